"""The one exception type for problems a user can fix."""


class CellsegError(Exception):
    """A problem with the user's input, settings or files.

    The message names the file, folder or layer concerned and says what to do. The CLI prints
    it without a traceback and exits with status 2; the napari widgets show it as a notification.
    Programming errors are not ``CellsegError`` and keep raising normally.
    """


class DivergedError(CellsegError):
    """Training diverged: the loss became infinite or NaN (too high a learning rate).

    A tuning study records such a trial as failed and goes on; a plain run stops with the
    message.
    """
