from opsgate.cli.main import main

main()
