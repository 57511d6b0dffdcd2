"""Migration revisions, one file each, in order."""
