"""The one kind of error a command raises for the user's own mistakes."""


class UserError(Exception):
    """A mistake the user can fix; printed as one line, exit status 1."""
