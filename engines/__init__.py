"""Running a network on a batch: torch, ONNX Runtime and TensorRT engines, and a micro-batcher."""
