"""The lean scoring engine: conform, encode, run the ONNX model, calibrate, explain (TreeSHAP),
word the reasons and count drift. What a scoring host runs; built on `hubscore.core` only."""
