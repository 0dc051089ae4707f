"""Torch modules, training, ONNX export and parity checks.

Needs the [train] extra; the engine never imports it.
"""
