"""Models leaving (and describing) this package: the model card, ONNX and bioimage.io export.

Importing this package imports neither torch nor onnx; each module imports what it needs.
"""
