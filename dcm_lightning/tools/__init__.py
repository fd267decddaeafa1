"""Tool subcommands (not LightningCLI): each module has ``main(argv)``."""
