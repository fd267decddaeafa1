"""The one exception type whose message is shown to the user as a single sentence."""


class UserError(Exception):
    """Bad input from the user (a config value, a path, a prompt); the CLI prints it and exits 2."""


def check_settings(**ranges: tuple[float, float | None, float | None]) -> None:
    """Each ``name=(value, low, high)``: ``low <= value`` (when low is given) and ``value < high`` (when
    high is given), else a UserError naming the setting, its value and the range."""
    for name, (value, low, high) in ranges.items():
        if (low is not None and value < low) or (high is not None and value >= high):
            bounds = " and ".join(
                filter(
                    None, (f"at least {low}" if low is not None else "", f"below {high}" if high is not None else "")
                )
            )
            raise UserError(f"{name} must be {bounds}, got {value}.")
