"""Read the ai.onnx.ml operators' attributes out of `model.onnx`, without the onnx package.

The lean scorer may not import `onnx`, and onnxruntime does not expose a graph's attributes.
protobuf (an onnxruntime dependency) parses the file with a partial schema: the field numbers
below are onnx-ml.proto's, for the few fields explanations read; every other field is skipped.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hubscore.core.errors import ArtifactError

# (message, field, number, type, repeated, message type), as in onnx-ml.proto; types are
# FieldDescriptorProto's: 11 message, 9 string, 5 int32, 2 float, 3 int64, 12 bytes.
_SCHEMA = (
    ("Model", "graph", 7, 11, False, "Graph"),
    ("Graph", "node", 1, 11, True, "Node"),
    ("Node", "op_type", 4, 9, False, None),
    ("Node", "domain", 7, 9, False, None),
    ("Node", "attribute", 5, 11, True, "Attribute"),
    ("Attribute", "name", 1, 9, False, None),
    ("Attribute", "type", 20, 5, False, None),
    ("Attribute", "f", 2, 2, False, None),
    ("Attribute", "i", 3, 3, False, None),
    ("Attribute", "s", 4, 12, False, None),
    ("Attribute", "floats", 7, 2, True, None),
    ("Attribute", "ints", 8, 3, True, None),
    ("Attribute", "strings", 9, 12, True, None),
)
# AttributeProto.AttributeType values -> the field that holds the value
_VALUE_FIELDS = {1: "f", 2: "i", 3: "s", 6: "floats", 7: "ints", 8: "strings"}
ML_DOMAIN = "ai.onnx.ml"


@dataclass(frozen=True)
class Operator:
    """One ai.onnx.ml node: its type and its attributes as Python values."""

    op_type: str
    attributes: dict[str, Any]


@functools.cache
def _model_class() -> Any:
    # Imported here: protobuf's descriptors take ~0.1-0.25 s to import, and only explaining
    # needs them; every scoring run would pay that at start-up otherwise.
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    field_type = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(name="hubscore_onnx_subset.proto", package="hs")
    file.syntax = "proto2"
    messages: dict[str, Any] = {}
    for message, name, number, kind, repeated, type_name in _SCHEMA:
        if message not in messages:
            messages[message] = file.message_type.add(name=message)
        field = messages[message].field.add(name=name, number=number, type=kind)
        field.label = field_type.LABEL_REPEATED if repeated else field_type.LABEL_OPTIONAL
        if type_name:
            field.type_name = f".hs.{type_name}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("hs.Model"))


def ml_operators(model_file: Path | bytes, path: Path | None = None) -> list[Operator]:
    """Return every ai.onnx.ml operator of an ONNX model (a file, or its bytes), in graph order.

    Args:
        path: where bytes came from, for messages.
    """
    if isinstance(model_file, Path):
        path, model_file = model_file, model_file.read_bytes()
    try:
        model = _model_class().FromString(model_file)
    except Exception as exc:  # protobuf raises its own DecodeError for damaged files
        raise ArtifactError(
            f"{path} is not a readable ONNX model: {exc}", hint="restore the run folder"
        ) from None
    return [
        Operator(node.op_type, {a.name: _value(a) for a in node.attribute})
        for node in model.graph.node
        if node.domain == ML_DOMAIN
    ]


def _value(attribute: Any) -> Any:
    value = getattr(attribute, _VALUE_FIELDS.get(attribute.type, "s"))
    if attribute.type == 8:
        return [item.decode() for item in value]
    if attribute.type == 3:
        return value.decode()
    return list(value) if attribute.type in (6, 7) else value
