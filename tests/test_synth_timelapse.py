"""Synthetic time-lapses: labels and lineage exactly consistent, cells that grow, divide and move
plausibly, images that look like the still generators'."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.measure import label as connected_label

from napari_cellseg import synth
from napari_cellseg.synth.timelapse.rods import _closest_points
from napari_cellseg.track.ctc import Track
from napari_cellseg.track.table import tracks_layer_data

KINDS = ["nuclei", "bacteria"]
SEEDS = [0, 1, 2]


@pytest.fixture(scope="module")
def movies() -> dict[tuple[str, int], synth.Timelapse]:
    return {(kind, seed): synth.timelapse(kind, seed=seed) for kind in KINDS for seed in SEEDS}


def _frames_of(labels: np.ndarray) -> dict[int, list[int]]:
    """``{id: [frames it is present in]}``."""
    frames: dict[int, list[int]] = {}
    for t, frame in enumerate(labels):
        for i in np.unique(frame[frame > 0]).tolist():
            frames.setdefault(i, []).append(t)
    return frames


def _areas(labels: np.ndarray) -> dict[tuple[int, int], int]:
    """``{(frame, id): area}``."""
    out = {}
    for t, frame in enumerate(labels):
        counts = np.bincount(frame.ravel())
        for i in np.flatnonzero(counts[1:]) + 1:
            out[t, int(i)] = int(counts[i])
    return out


def _on_border(frame: np.ndarray, i: int) -> bool:
    return bool(
        np.isin(i, frame[0])
        or np.isin(i, frame[-1])
        or np.isin(i, frame[:, 0])
        or np.isin(i, frame[:, -1])
    )


@pytest.mark.parametrize("kind", KINDS)
def test_arrays_have_the_documented_types_and_shapes(movies, kind) -> None:
    movie = movies[kind, 0]
    assert movie.kind == kind
    assert movie.images.dtype == np.float32 and movie.images.shape == (20, 256, 256)
    assert movie.labels.dtype == np.int32 and movie.labels.shape == (20, 256, 256)
    assert np.isfinite(movie.images).all() and movie.images.min() >= 0
    assert movie.drift.shape == (20, 2) and (movie.drift[0] == 0).all()
    assert all(isinstance(t, Track) for t in movie.tracks)


@pytest.mark.parametrize("kind", KINDS)
def test_every_track_id_is_present_in_exactly_its_frames(movies, kind) -> None:
    for seed in SEEDS:
        movie = movies[kind, seed]
        frames = _frames_of(movie.labels)
        assert [t.id for t in movie.tracks] == list(range(1, len(movie.tracks) + 1))
        assert sorted(frames) == [t.id for t in movie.tracks]  # no label without a track
        for track in movie.tracks:
            assert frames[track.id] == list(range(track.begin, track.end + 1)), track


@pytest.mark.parametrize("kind", KINDS)
def test_daughters_begin_the_frame_after_their_mother_ends(movies, kind) -> None:
    for seed in SEEDS:
        movie = movies[kind, seed]
        by_id = {t.id: t for t in movie.tracks}
        for track in movie.tracks:
            if track.parent:
                assert by_id[track.parent].end == track.begin - 1, track
                assert track.parent < track.id  # ids in order of birth
            elif track.begin > 0:
                pytest.fail(f"track {track} appears without a mother")
        assert all(1 <= len(d) <= 2 for d in movie.divisions.values())
        graph = tracks_layer_data(movie.labels, movie.tracks)[1]
        assert graph == {t.id: [t.parent] for t in movie.tracks if t.parent}


@pytest.mark.parametrize("kind", KINDS)
def test_the_default_movies_have_many_divisions_and_most_have_two_daughters(movies, kind) -> None:
    for seed in SEEDS:
        divisions = movies[kind, seed].divisions
        assert len(divisions) >= 10, (seed, len(divisions))
        assert sum(len(d) == 2 for d in divisions.values()) >= 0.8 * len(divisions)


def test_the_cycle_length_controls_the_division_rate() -> None:
    fast = synth.timelapse("nuclei", n_frames=12, shape=(192, 192), n_cells=4, cycle=4, seed=5)
    slow = synth.timelapse("nuclei", n_frames=12, shape=(192, 192), n_cells=4, cycle=30, seed=5)
    assert len(fast.divisions) >= 6
    assert len(slow.divisions) <= 2


@pytest.mark.parametrize("kind", KINDS)
def test_each_daughter_has_about_half_its_mothers_area(movies, kind) -> None:
    checked = 0
    for seed in SEEDS:
        movie = movies[kind, seed]
        area = _areas(movie.labels)
        by_id = {t.id: t for t in movie.tracks}
        for mother, daughters in movie.divisions.items():
            t = by_id[mother].end
            if len(daughters) < 2 or any(
                _on_border(movie.labels[t + (d != mother)], d) for d in (mother, *daughters)
            ):
                continue
            a_mother = area[t, mother]
            a_daughters = [area[t + 1, d] for d in daughters]
            assert all(0.3 < a / a_mother < 0.7 for a in a_daughters), (seed, mother)
            assert 0.8 < sum(a_daughters) / a_mother < 1.25, (seed, mother)
            checked += 1
    assert checked >= 10


@pytest.mark.parametrize("kind", KINDS)
def test_cells_move_a_few_pixels_per_frame(movies, kind) -> None:
    steps = []
    for seed in SEEDS:
        labels = movies[kind, seed].labels
        for t in range(len(labels) - 1):
            a, b = labels[t], labels[t + 1]
            both = [
                i
                for i in np.intersect1d(a[a > 0], b[b > 0]).tolist()
                if not (_on_border(a, i) or _on_border(b, i))
            ]
            if not both:
                continue
            before = np.array(ndi.center_of_mass(np.ones(a.shape), a, both))
            after = np.array(ndi.center_of_mass(np.ones(b.shape), b, both))
            steps.extend(np.hypot(*(after - before).T).tolist())
    steps = np.array(steps)
    assert len(steps) > 200
    assert steps.max() < 12.0
    assert 0.5 < np.median(steps) < 6.0  # they do move (drift, random walk, pushing)


@pytest.mark.parametrize("kind", KINDS)
def test_each_cell_is_one_4_connected_piece_in_every_frame(movies, kind) -> None:
    for frame in movies[kind, 0].labels:
        pieces = connected_label(frame, background=0, connectivity=1)
        assert pieces.max() == len(np.unique(frame)) - 1


def test_nuclei_are_bright_on_a_dark_background(movies) -> None:
    for seed in SEEDS:
        movie = movies["nuclei", seed]
        for image, labels in zip(movie.images[::5], movie.labels[::5]):
            background = ~ndi.binary_dilation(labels > 0, iterations=5)
            assert image[labels > 0].mean() > 2.5 * image[background].mean()
            assert 100 < np.median(image[background]) < 200  # as synth.nuclei


def test_bacteria_are_darker_than_the_background_with_a_bright_halo(movies) -> None:
    for seed in SEEDS:
        movie = movies["bacteria", seed]
        for image, labels in zip(movie.images[::5], movie.labels[::5]):
            cells = labels > 0
            ring = ndi.binary_dilation(cells, iterations=3) & ~cells
            background = ~ndi.binary_dilation(cells, iterations=10)
            assert image[cells].mean() < 0.85 * image[background].mean()
            assert image[ring].mean() > 1.05 * image[background].mean()


def test_only_the_noise_changes_where_nothing_moves() -> None:
    movie = synth.timelapse("nuclei", n_frames=2, shape=(64, 64), n_cells=0, drift=0.0, seed=3)
    first, second = movie.images
    assert not np.array_equal(first, second)
    np.testing.assert_allclose(first.mean(), second.mean(), rtol=0.02)
    assert (
        np.corrcoef(ndi.uniform_filter(first, 9).ravel(), ndi.uniform_filter(second, 9).ravel())[
            0, 1
        ]
        > 0.9
    )


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_gives_the_same_movie_and_other_seeds_differ(kind) -> None:
    options = {"n_frames": 6, "shape": (96, 128), "n_cells": 3}
    movie = synth.timelapse(kind, seed=3, **options)
    again = synth.timelapse(kind, seed=np.random.SeedSequence(3), **options)
    other = synth.timelapse(kind, seed=4, **options)
    np.testing.assert_array_equal(movie.images, again.images)
    np.testing.assert_array_equal(movie.labels, again.labels)
    assert movie.tracks == again.tracks
    assert not np.array_equal(movie.images, other.images)
    assert not np.array_equal(movie.labels, other.labels)


@pytest.mark.parametrize("kind", KINDS)
def test_the_geometry_table_has_one_row_per_cell_and_frame(movies, kind) -> None:
    movie = movies[kind, 0]
    present = sorted((t, i) for i, frames in _frames_of(movie.labels).items() for t in frames)
    assert sorted(zip(movie.cells["t"].tolist(), movie.cells["id"].tolist())) == present
    data = tracks_layer_data(movie.labels, movie.tracks)[0]
    assert data.shape == (len(present), 4)
    assert sorted(zip(data[:, 1].astype(int).tolist(), data[:, 0].astype(int).tolist())) == present
    # The simulated centres are the labels' centroids, for cells inside the field.
    rows = {(int(r["t"]), int(r["id"])): r for r in movie.cells}
    inside = [row for row in data if not _on_border(movie.labels[int(row[1])], int(row[0]))]
    offsets = [
        np.hypot(
            row[2] - rows[int(row[1]), int(row[0])]["y"],
            row[3] - rows[int(row[1]), int(row[0])]["x"],
        )
        for row in inside
    ]
    assert np.median(offsets) < 1.0


def test_bacteria_daughters_keep_the_mothers_axis_and_poles(movies) -> None:
    turns, checked = [], 0
    for seed in SEEDS:
        movie = movies["bacteria", seed]
        rows = {(int(r["t"]), int(r["id"])): r for r in movie.cells}
        by_id = {t.id: t for t in movie.tracks}
        for mother, daughters in movie.divisions.items():
            if len(daughters) < 2:
                continue
            t = by_id[mother].end
            m = rows[t, mother]
            pair = [rows[t + 1, d] for d in daughters]
            inherited = set()
            for d in pair:
                turns.append(abs(np.angle(np.exp(2j * (d["angle"] - m["angle"])))))  # modulo pi
                assert d["width"] == pytest.approx(m["width"])
                # Each daughter's old pole is one of the mother's; its new pole lies at her
                # middle (up to a frame's drift and pushing).
                gaps = {p: np.hypot(*(d["old_pole"] - m[p])) for p in ("old_pole", "new_pole")}
                nearest = min(gaps, key=gaps.get)
                assert gaps[nearest] < 8.0
                inherited.add(nearest)
                assert np.hypot(*(d["new_pole"] - (m["y"], m["x"]))) < 6.0
            assert inherited == {"old_pole", "new_pole"}
            assert np.hypot(*(pair[0]["new_pole"] - pair[1]["new_pole"])) < 4.0
            checked += 1
    assert checked >= 20
    assert np.median(turns) < 0.1 and np.percentile(turns, 90) < 0.25 and max(turns) < 0.5


def test_nuclei_have_no_poles(movies) -> None:
    assert np.isnan(movies["nuclei", 0].cells["old_pole"]).all()


def test_an_empty_field_and_a_single_frame_are_allowed() -> None:
    empty = synth.timelapse("bacteria", n_frames=3, shape=(64, 64), n_cells=0)
    assert empty.labels.max() == 0 and empty.tracks == [] and empty.images.min() > 0
    empty_data = tracks_layer_data(empty.labels, empty.tracks)[0]
    assert empty_data.shape == (0, 4) and len(empty.cells) == 0
    single = synth.timelapse("nuclei", n_frames=1, shape=(64, 64), n_cells=2)
    assert [(t.begin, t.end, t.parent) for t in single.tracks] == [(0, 0, 0), (0, 0, 0)]


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="kind"):
        synth.timelapse("yeast")
    with pytest.raises(ValueError, match="n_frames"):
        synth.timelapse(n_frames=0)
    with pytest.raises(ValueError, match="cycle"):
        synth.timelapse(cycle=1)
    with pytest.raises(ValueError, match="shape"):
        synth.timelapse(shape=(0, 10))


def test_closest_points_of_segments() -> None:
    p0 = np.array([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    p1 = np.array([[10.0, 0.0], [10.0, 0.0], [10.0, 0.0]])
    q0 = np.array(
        [[3.0, 2.0], [12.0, 1.0], [5.0, -3.0]]
    )  # parallel above; beyond the end; crossing
    q1 = np.array([[6.0, 2.0], [15.0, 5.0], [5.0, 3.0]])
    a, b = _closest_points(p0, p1, q0, q1)
    np.testing.assert_allclose(np.hypot(*(a - b).T), [2.0, np.hypot(2.0, 1.0), 0.0], atol=1e-9)
    np.testing.assert_allclose(a[1:], [[10.0, 0.0], [5.0, 0.0]], atol=1e-9)


def test_the_track_module_agrees() -> None:
    """Cross-check with the CTC helpers of :mod:`napari_cellseg.track`, where they exist."""
    ctc = pytest.importorskip("napari_cellseg.track.ctc")
    if not hasattr(ctc, "check_tracks"):
        pytest.skip("track.ctc.check_tracks not there yet")
    movie = synth.timelapse("bacteria", n_frames=8, shape=(128, 128), n_cells=3, seed=1)
    ctc.check_tracks(movie.labels, movie.tracks, "synthetic")
    parents = {t.id: t.parent for t in movie.tracks if t.parent}
    assert ctc.tracks_from_labels(movie.labels, parents) == movie.tracks
