"""mailer: newsletters and campaign mail for regional activist networks."""

__version__ = "0.1.0"
