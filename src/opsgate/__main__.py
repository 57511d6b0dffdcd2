from opsgate.cli import main

main()
