"""Cell tracking, DeLTA style, with Cell Tracking Challenge (CTC) files.

A tracking result is always the CTC pair: a label stack ``(T, Y, X)`` whose ids are track ids
(one id per branch between divisions) and a list of :class:`~.ctc.Track` rows (id, begin, end,
parent). Modules:

- :mod:`.ctc` - the track table (``man_track.txt`` / ``res_track.txt`` rows) and its checks
  against a label stack;
- :mod:`.folders` - CTC sequences, ground truths and ``maskNNN.tif`` results, frame stacks;
- :mod:`.table` - lineage tables (CSV) and napari Tracks data from a result;
- :mod:`.samples` - tracking training samples (DeLTA's six folders, or built from a sequence);
- :mod:`.weights` - DeLTA's ``tracking_weights``;
- :mod:`.lineage` - tracking scores, attribution, continuation / division / orphans;
- :mod:`.engine` - a stack of frames through a tracking model (or LapTrack) to a result;
- :mod:`.scores` - CTC DET / SEG / TRA through ``py-ctcmetrics``;
- :mod:`.edit` - link corrections (reassign, break, divide) on a result.

Importing the package does not import torch.
"""
