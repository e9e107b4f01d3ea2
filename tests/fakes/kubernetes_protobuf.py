"""Enough of the API server's protobuf decoding for what kubectl >= 1.32 sends that way.

kubectl 1.32 and later create built-in objects (``kubectl create deployment``, ``kubectl
create namespace``) with ``Content-Type: application/vnd.kubernetes.protobuf`` and accept
JSON back. The body is the ``k8s\\x00`` magic and a ``runtime.Unknown`` (typeMeta 1, raw
2), and ``raw`` is the object in the field numbers of k8s.io/api's generated.proto files.
The schemas below cover the fields those commands can set; a field this decoder does not
know that carries a value is an error (415), never silently dropped. gogo-protobuf
writes every non-pointer field, empty or not, so empty values are read as absent, except
for the pointer fields (``replicas``, ...) where an explicit zero means zero.
"""

from __future__ import annotations

from typing import Any

MAGIC = b"k8s\x00"

# A schema maps a field number to (JSON name, kind); kind is "str", "int", "int*" (a
# pointer: zero kept), "bool", "map" (map<string,string>), "qmap" (map<string,Quantity>),
# "intstr", ["str"] (repeated string), a nested schema dict, or [schema] (repeated).
Schema = dict[int, tuple[str, Any]]

OBJECT_META: Schema = {
    1: ("name", "str"),
    2: ("generateName", "str"),
    3: ("namespace", "str"),
    11: ("labels", "map"),
    12: ("annotations", "map"),
    14: ("finalizers", ["str"]),
}
# Server-set ObjectMeta fields kubectl sends empty: selfLink, uid, resourceVersion,
# generation, creationTimestamp, deletionTimestamp, deletionGracePeriodSeconds, managedFields.
IGNORED_META = {4, 5, 6, 7, 8, 9, 10, 13, 17}
LABEL_SELECTOR: Schema = {
    1: ("matchLabels", "map"),
    2: ("matchExpressions", [{1: ("key", "str"), 2: ("operator", "str"), 3: ("values", ["str"])}]),
}
CONTAINER_PORT: Schema = {
    1: ("name", "str"),
    2: ("hostPort", "int"),
    3: ("containerPort", "int"),
    4: ("protocol", "str"),
    5: ("hostIP", "str"),
}
CONTAINER: Schema = {
    1: ("name", "str"),
    2: ("image", "str"),
    3: ("command", ["str"]),
    4: ("args", ["str"]),
    5: ("workingDir", "str"),
    6: ("ports", [CONTAINER_PORT]),
    7: ("env", [{1: ("name", "str"), 2: ("value", "str")}]),
    8: ("resources", {1: ("limits", "qmap"), 2: ("requests", "qmap")}),
    13: ("terminationMessagePath", "str"),
    14: ("imagePullPolicy", "str"),
    16: ("stdin", "bool"),
    17: ("stdinOnce", "bool"),
    18: ("tty", "bool"),
    20: ("terminationMessagePolicy", "str"),
}
POD_SPEC: Schema = {
    2: ("containers", [CONTAINER]),
    3: ("restartPolicy", "str"),
    4: ("terminationGracePeriodSeconds", "int*"),
    6: ("dnsPolicy", "str"),
    7: ("nodeSelector", "map"),
    8: ("serviceAccountName", "str"),
    9: ("serviceAccount", "str"),
    10: ("nodeName", "str"),
    11: ("hostNetwork", "bool"),
    12: ("hostPID", "bool"),
    13: ("hostIPC", "bool"),
    19: ("schedulerName", "str"),
    20: ("initContainers", [CONTAINER]),
}
POD_TEMPLATE: Schema = {1: ("metadata", OBJECT_META), 2: ("spec", POD_SPEC)}
DEPLOYMENT: Schema = {
    1: ("metadata", OBJECT_META),
    2: (
        "spec",
        {
            1: ("replicas", "int*"),
            2: ("selector", LABEL_SELECTOR),
            3: ("template", POD_TEMPLATE),
            4: (
                "strategy",
                {
                    1: ("type", "str"),
                    2: (
                        "rollingUpdate",
                        {1: ("maxUnavailable", "intstr"), 2: ("maxSurge", "intstr")},
                    ),
                },
            ),
            5: ("minReadySeconds", "int"),
            6: ("revisionHistoryLimit", "int*"),
            7: ("paused", "bool"),
            9: ("progressDeadlineSeconds", "int*"),
        },
    ),
    3: ("status", None),  # ignored: status is the server's
}
NAMESPACE: Schema = {
    1: ("metadata", OBJECT_META),
    2: ("spec", {1: ("finalizers", ["str"])}),
    3: ("status", None),
}
SCHEMAS: dict[tuple[str, str], Schema] = {
    ("apps/v1", "Deployment"): DEPLOYMENT,
    ("v1", "Namespace"): NAMESPACE,
}


class ProtobufError(ValueError):
    """A body this decoder cannot turn into JSON faithfully."""


def _varint(data: bytes, i: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if i >= len(data):
            raise ProtobufError("truncated varint")
        byte = data[i]
        i += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return result, i


def _fields(data: bytes) -> list[tuple[int, int, Any]]:
    out: list[tuple[int, int, Any]] = []
    i = 0
    while i < len(data):
        key, i = _varint(data, i)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, i = _varint(data, i)
        elif wire == 2:
            size, i = _varint(data, i)
            value, i = data[i : i + size], i + size
        else:
            raise ProtobufError(f"unexpected wire type {wire} in field {number}")
        out.append((number, wire, value))
    return out


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _map(entries: list[bytes], quantity: bool = False) -> dict[str, str]:
    out: dict[str, str] = {}
    for entry in entries:
        parts = {n: v for n, _, v in _fields(entry)}
        value = parts.get(2, b"")
        if quantity:
            value = {n: v for n, _, v in _fields(value)}.get(1, b"")
        out[parts.get(1, b"").decode()] = value.decode()
    return out


def _empty(wire: int, value: Any) -> bool:
    return value == 0 if wire == 0 else len(value) == 0


def decode_message(data: bytes, schema: Schema, where: str = "") -> dict[str, Any]:
    grouped: dict[int, list[tuple[int, Any]]] = {}
    for number, wire, value in _fields(data):
        grouped.setdefault(number, []).append((wire, value))
    out: dict[str, Any] = {}
    for number, values in grouped.items():
        if number not in schema:
            if schema is OBJECT_META and number in IGNORED_META:
                continue
            if all(_empty(w, v) for w, v in values):
                continue
            raise ProtobufError(f"field {where}#{number} is not understood by this fake")
        name, kind = schema[number]
        if kind is None:
            continue
        raw = [v for _, v in values]
        if kind == "str":
            if raw[-1]:
                out[name] = raw[-1].decode()
        elif kind in ("int", "int*"):
            if raw[-1] or kind == "int*":
                out[name] = _signed(raw[-1])
        elif kind == "bool":
            if raw[-1]:
                out[name] = True
        elif kind in ("map", "qmap"):
            mapping = _map(raw, quantity=kind == "qmap")
            if mapping:
                out[name] = mapping
        elif kind == "intstr":
            parts = {n: v for n, _, v in _fields(raw[-1])}
            out[name] = (
                parts.get(3, b"").decode() if parts.get(1) == 1 else _signed(parts.get(2, 0))
            )
        elif kind == ["str"]:
            out[name] = [v.decode() for v in raw]
        elif isinstance(kind, list):
            out[name] = [decode_message(v, kind[0], f"{where}{name}[]") for v in raw]
        elif isinstance(kind, dict):
            out[name] = decode_message(raw[-1], kind, f"{where}{name}.")
        else:
            raise ProtobufError(f"bad schema kind {kind!r}")
    return out


def decode(body: bytes) -> dict[str, Any]:
    """A protobuf-encoded object as the JSON the API server would store."""
    if not body.startswith(MAGIC):
        raise ProtobufError("the body does not start with the k8s protobuf magic number")
    envelope = {n: v for n, _, v in _fields(body[len(MAGIC) :])}
    type_meta = {n: v for n, _, v in _fields(envelope.get(1, b""))}
    api_version = type_meta.get(1, b"").decode()
    kind = type_meta.get(2, b"").decode()
    schema = SCHEMAS.get((api_version, kind))
    if schema is None:
        raise ProtobufError(f"this fake decodes no protobuf {kind} ({api_version}); send JSON")
    obj = decode_message(envelope.get(2, b""), schema)
    return {"apiVersion": api_version, "kind": kind, **obj}
