"""What can go wrong reading or writing the lake, each with a message a reader can act on."""


class LakeError(Exception):
    """Base class: the CLI turns any of these into exit code 2."""


class UnknownTableError(LakeError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class UnknownVersionError(LakeError, ValueError):
    pass


class IncompatibleSchemaError(LakeError, ValueError):
    """The warehouse table changed in a way the lake table cannot absorb (only added nullable columns merge)."""
