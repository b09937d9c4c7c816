"""Stage 1, where lines are read: which files to follow, and one coroutine per file reading them.

``discovery`` expands the patterns and starts a ``tailer`` per file; the tailer reads complete lines
(``reader``, on worker threads) and hands them on as batches; the ``poller`` (with ``hints`` from
``watch``) tells sleeping tailers their file grew; ``descriptors`` keeps the open-file budget;
``identity`` and ``listing`` say which file is which. This stage sees delivery and the checkpoints
only through the narrow protocols in ``tailer`` and never imports them.
"""
