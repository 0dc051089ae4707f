"""Runtime stages (structure, window, reason, plan, safety).

numpy + onnxruntime only: no store, no transport, no torch.
"""
