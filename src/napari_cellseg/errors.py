"""The one exception type for problems a user can fix."""


class CellsegError(Exception):
    """A problem with the user's input, settings or files.

    The message names the file, folder or layer concerned and says what to do. The CLI prints
    it without a traceback and exits with status 2; the napari widgets show it as a notification.
    Programming errors are not ``CellsegError`` and keep raising normally.
    """
