"""``cellseg demo --gui``: napari with the synthetic sample data and the three widgets docked."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import napari.viewer

#: Widgets docked by :func:`make_demo_viewer`, by manifest display name (the first one shows).
WIDGETS = ("Annotation QC", "Train", "Segment")


def make_demo_viewer(
    kind: str = "bacteria", *, show: bool = True
) -> tuple[napari.viewer.Viewer, dict[str, tuple[Any, Any]]]:
    """Open a viewer with a sample image and its labels, and the QC, Train and Segment widgets.

    Parameters
    ----------
    kind
        ``"bacteria"`` or ``"nuclei"`` (see :mod:`napari_cellseg.napari._sample_data`).
    show
        Show the window.

    Returns
    -------
    viewer : napari.viewer.Viewer
        The viewer; the widgets are docked on the right, Train and Segment as tabs behind QC.
    docks : dict
        Widget name -> ``(dock widget, widget)``, in :data:`WIDGETS` order.
    """
    from napari.layers import Layer

    import napari
    from napari_cellseg.napari import _sample_data

    samples = {"bacteria": _sample_data.bacteria, "nuclei": _sample_data.nuclei}
    if kind not in samples:
        raise ValueError(f"kind must be one of {', '.join(samples)}, not {kind!r}")
    viewer = napari.Viewer(title=f"napari-cellseg demo ({kind})", show=show)
    for data, meta, layer_type in samples[kind]():
        viewer.add_layer(Layer.create(data, meta, layer_type))
    docks: dict[str, tuple[Any, Any]] = {}
    for name in WIDGETS:
        docks[name] = viewer.window.add_plugin_dock_widget(
            "napari-cellseg", name, tabify=bool(docks)
        )
    docks[WIDGETS[0]][0].raise_()
    return viewer, docks


def open_demo_viewer(kind: str = "bacteria") -> None:
    """Open the demo viewer (:func:`make_demo_viewer`) and run napari until it is closed.

    Parameters
    ----------
    kind
        ``"bacteria"`` or ``"nuclei"``.
    """
    import napari

    make_demo_viewer(kind)
    napari.run()
