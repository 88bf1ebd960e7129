"""A local AWS emulator (moto server, patched where it lacks what this stack uses) and the deploy into it."""
