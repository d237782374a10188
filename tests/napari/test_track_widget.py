"""The Track widget in a real napari viewer: tracking into new layers, corrections, undo, save."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from napari.layers import Labels, Tracks

from napari_cellseg.napari.track import TrackWidget
from napari_cellseg.napari.track.result import TRACKS, current_tracks
from napari_cellseg.napari.track.widget import METHODS
from napari_cellseg.track.ctc import Track
from napari_cellseg.track.folders import read_sequence

TIMEOUT_MS = 60_000
#: The division of the movie: the upper disc splits at this frame.
SPLIT = 3


def discs_movie(n_frames: int = 6, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Two discs moving apart; the upper one divides at :data:`SPLIT`. Ids are per frame."""
    yy, xx = np.mgrid[:size, :size]
    labels = np.zeros((n_frames, size, size), np.int32)
    for t in range(n_frames):
        x = 12 + 3 * t
        lower = (48, 52 - 2 * t, 30)
        cells = [(22, x, 30), lower] if t < SPLIT else [(15, x, 20), (29, x, 20), lower]
        for n, (cy, cx, r2) in enumerate(cells, start=1):
            labels[t][(yy - cy) ** 2 + (xx - cx) ** 2 <= r2] = n
    return (labels > 0).astype(np.float32), labels


@pytest.fixture
def widget(viewer) -> TrackWidget:  # noqa: ANN001 - napari viewer proxy
    widget = TrackWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Track")
    return widget


def _track(qtbot, viewer, widget: TrackWidget) -> tuple[np.ndarray, Labels, Tracks]:  # noqa: ANN001
    """Track the movie with LapTrack; the input labels (a copy), the result and its tracks."""
    _, labels = discs_movie()
    viewer.add_labels(labels, name="cells")
    widget.set_labels("cells")
    widget.set_method("laptrack")
    widget.run()
    qtbot.waitUntil(lambda: not widget.busy, timeout=TIMEOUT_MS)
    return labels.copy(), viewer.layers["cells tracked"], viewer.layers["cells tracks"]


def _id_at(layer: Labels, t: int, y: int, x: int) -> int:
    return int(layer.data[t, y, x])


def test_methods_are_the_engines() -> None:
    from napari_cellseg.track.engine import METHODS as ENGINE_METHODS

    assert METHODS == ENGINE_METHODS


def test_tracking_adds_a_relabelled_layer_and_a_tracks_layer_with_the_division(
    qtbot, viewer, widget
) -> None:
    before, tracked, tracks_layer = _track(qtbot, viewer, widget)

    np.testing.assert_array_equal(viewer.layers["cells"].data, before)  # input unchanged
    assert isinstance(tracked, Labels) and isinstance(tracks_layer, Tracks)
    assert tracked.data.shape == before.shape
    mother = _id_at(tracked, 0, 22, 12)
    upper, lower = _id_at(tracked, SPLIT, 15, 21), _id_at(tracked, SPLIT, 29, 21)
    assert tracks_layer.graph == {upper: [mother], lower: [mother]}
    table = {t.id: t for t in tracked.metadata[TRACKS]}
    assert table[mother] == Track(mother, 0, SPLIT - 1, 0)
    assert table[upper] == Track(upper, SPLIT, 5, mother)
    assert len(table) == 4
    assert widget.result_layer.name == tracked.name
    assert set(np.unique(tracks_layer.data[:, 0]).astype(int)) == set(table)


def test_a_synthetic_time_lapse_is_tracked_with_its_divisions(qtbot, viewer, widget) -> None:
    from napari_cellseg.synth.timelapse import timelapse

    movie = timelapse("nuclei", n_frames=6, shape=(96, 96), n_cells=3, seed=0, cycle=4)
    viewer.add_labels(movie.labels, name="nuclei")
    widget.set_labels("nuclei")
    widget.run()
    qtbot.waitUntil(lambda: not widget.busy, timeout=TIMEOUT_MS)

    np.testing.assert_array_equal(viewer.layers["nuclei"].data, movie.labels)
    assert {t.parent for t in movie.tracks if t.parent}  # the movie holds divisions
    table = {t.id: t for t in viewer.layers["nuclei tracked"].metadata[TRACKS]}
    graph = viewer.layers["nuclei tracks"].graph
    assert graph and all(parents == [table[child].parent] for child, parents in graph.items())


def test_a_correction_is_one_undoable_edit_and_undo_brings_back_the_table(
    qtbot, viewer, widget
) -> None:
    _, tracked, tracks_layer = _track(qtbot, viewer, widget)
    pixels, table = tracked.data.copy(), list(tracked.metadata[TRACKS])
    points = tracks_layer.data.copy()
    lower = _id_at(tracked, 0, 48, 52)

    widget.select_track(lower)
    assert tracked.selected_label == lower
    viewer.dims.set_current_step(0, 4)
    widget.break_link()

    new = max(t.id for t in table) + 1
    assert _id_at(tracked, 4, 48, 44) == new and _id_at(tracked, 3, 48, 46) == lower
    after = tracked.metadata[TRACKS]
    assert Track(lower, 0, 3, 0) in after and Track(new, 4, 5, 0) in after
    assert new in set(tracks_layer.data[:, 0].astype(int))
    assert tracked.selected_label == new

    tracked.undo()

    np.testing.assert_array_equal(tracked.data, pixels)
    assert tracked.metadata[TRACKS] == table
    np.testing.assert_array_equal(tracks_layer.data, points)

    tracked.redo()
    assert current_tracks(tracked) == after


def test_a_division_that_changes_only_parents_renumbers_the_new_daughter(
    qtbot, viewer, widget, notes
) -> None:
    _, tracked, tracks_layer = _track(qtbot, viewer, widget)
    mother = _id_at(tracked, 0, 22, 12)
    upper, lower = _id_at(tracked, SPLIT, 15, 21), _id_at(tracked, SPLIT, 29, 21)
    viewer.dims.set_current_step(0, SPLIT)
    widget.select_track(upper)
    widget.break_link()  # at its first frame: the link to the mother is cut
    orphan = _id_at(tracked, SPLIT, 15, 21)
    assert tracks_layer.graph == {lower: [mother]}
    pixels, table = tracked.data.copy(), list(tracked.metadata[TRACKS])

    widget.select_track(mother)
    widget.mark_division((orphan, lower))

    rows = {t.id: t for t in tracked.metadata[TRACKS]}
    first, second = _id_at(tracked, SPLIT, 15, 21), _id_at(tracked, SPLIT, 29, 21)
    assert first not in (orphan, lower)  # renumbered: undo can tell the edit apart
    assert second == lower  # already the mother's daughter: unchanged
    assert rows[first].parent == rows[second].parent == mother
    assert tracks_layer.graph == {first: [mother], second: [mother]}
    assert not notes.errors()

    tracked.undo()

    np.testing.assert_array_equal(tracked.data, pixels)
    assert tracked.metadata[TRACKS] == table
    assert tracks_layer.graph == {lower: [mother]}


def test_reassign_joins_the_selected_cell_to_a_track(qtbot, viewer, widget) -> None:
    _, tracked, _ = _track(qtbot, viewer, widget)
    lower = _id_at(tracked, 0, 48, 52)
    viewer.dims.set_current_step(0, 2)
    widget.select_track(lower)
    widget.break_link()
    cut = tracked.selected_label
    assert cut != lower

    widget.reassign(lower)  # the cut part (selected) joins its old track again

    assert _id_at(tracked, 5, 48, 42) == lower
    assert Track(lower, 0, 5, 0) in tracked.metadata[TRACKS]
    assert cut not in {t.id for t in tracked.metadata[TRACKS]}


def test_an_impossible_correction_is_a_notification_and_changes_nothing(
    qtbot, viewer, widget, notes
) -> None:
    _, tracked, _ = _track(qtbot, viewer, widget)
    pixels = tracked.data.copy()
    viewer.dims.set_current_step(0, 0)
    widget.select_track(_id_at(tracked, 0, 48, 52))

    widget.break_link()  # frame 0 of a track without parent: nothing to break

    assert any("no link to break" in message for message in notes.errors())
    np.testing.assert_array_equal(tracked.data, pixels)


def test_save_writes_a_ctc_result_and_the_lineage_table(qtbot, viewer, widget, tmp_path) -> None:
    _, tracked, _ = _track(qtbot, viewer, widget)

    written = widget.save(tmp_path / "01_RES")

    assert (tmp_path / "01_RES" / "res_track.txt") in written
    assert (tmp_path / "01_RES" / "lineage.csv").is_file()
    back = read_sequence(tmp_path / "01_RES")
    np.testing.assert_array_equal(back.labels, tracked.data)
    assert back.tracks == sorted(tracked.metadata[TRACKS])
    assert widget.save(tmp_path / "01_RES") == []  # an existing result is not replaced


def test_a_2d_labels_layer_is_refused_with_a_notification(viewer, widget, notes) -> None:
    viewer.add_labels(discs_movie()[1][0], name="one frame")
    widget.set_labels("one frame")
    n_layers = len(viewer.layers)

    widget.run()

    assert not widget.busy and len(viewer.layers) == n_layers
    assert any("needs a time-lapse" in message for message in notes.errors())


def test_the_model_method_without_a_model_is_refused(viewer, widget, notes) -> None:
    viewer.add_labels(discs_movie()[1], name="cells")
    widget.set_labels("cells")
    widget.set_method("model")

    widget.run()

    assert not widget.busy
    assert any("needs a model file" in message for message in notes.errors())


def test_a_missing_model_file_is_a_notification_from_the_worker(
    qtbot, viewer, widget, notes, tmp_path: Path
) -> None:
    images, labels = discs_movie()
    viewer.add_image(images, name="frames")
    viewer.add_labels(labels, name="cells")
    widget.set_labels("cells")
    widget.set_image("frames")
    widget.set_method("model", tmp_path / "missing.pt")

    widget.run()
    qtbot.waitUntil(lambda: not widget.busy, timeout=TIMEOUT_MS)

    assert notes.errors() and "cells tracked" not in viewer.layers


def test_a_trained_tracking_model_tracks_in_the_widget(qtbot, viewer, widget, tmp_path) -> None:
    """The model method end to end: a tiny real model (trained here), a new tracked layer."""
    from napari_cellseg.config import TrainConfig
    from napari_cellseg.track.samples import items_from_sequence
    from napari_cellseg.train import train_until

    images, labels = discs_movie()
    table = [Track(1, 0, SPLIT - 1), Track(2, 0, 5)]  # not the truth: enough to train on
    model = tmp_path / "track.pt"
    config = TrainConfig(
        architecture="track",
        tyx=(32, 32),
        nbase=(8, 16),
        batch_size=4,
        n_epochs=1,
        model=str(model),
    )
    stable = labels.copy()
    stable[SPLIT:] = np.where(labels[SPLIT:] == 3, 2, 0)  # the lower disc only, id 2
    stable[:SPLIT] = np.where(labels[:SPLIT] == 2, 2, np.where(labels[:SPLIT] == 1, 1, 0))
    train_until(config, None, items_from_sequence(images, stable, table))
    viewer.add_image(images, name="frames")
    viewer.add_labels(labels, name="cells")
    widget.set_labels("cells")
    widget.set_image("frames")
    widget.set_method("model", model)
    widget.run()
    qtbot.waitUntil(lambda: not widget.busy, timeout=TIMEOUT_MS)

    tracked = viewer.layers["cells tracked"]
    assert tracked.data.shape == labels.shape
    assert ((tracked.data > 0) == (labels > 0)).all()
    assert current_tracks(tracked)  # a valid CTC table came back
    np.testing.assert_array_equal(viewer.layers["cells"].data, labels)
