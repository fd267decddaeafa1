"""The one exception type whose message is shown to the user as a single sentence."""


class UserError(Exception):
    """Bad input from the user (a config value, a path, a prompt); the CLI prints it and exits 2."""
