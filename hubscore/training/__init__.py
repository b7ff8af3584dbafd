"""train: encoder fitting, time-aware splits, the model families, evaluation, the report, ONNX
export with its verification gate, run orchestration and tracking (the training stack)."""
