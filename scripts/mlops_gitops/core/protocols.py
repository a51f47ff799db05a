"""The wire formats the model server speaks, besides its own `/predict`: one request, decoded to
records (column: value rows) that the server checks and predicts like any other, and the
prediction encoded back as the protocol's clients expect.

MLflow's scoring protocol, as `mlflow models serve` answers it:

    POST /invocations   application/json: {"dataframe_split": {"columns", "data"}},
                        {"dataframe_records": [...]}, {"instances": [...]} or {"inputs": ...}
                        (records, or columnar {column: [values]}); or text/csv with a header.
                        Answers {"predictions": [...]}.
    GET  /ping, /health (200 once ready), /version (the MLflow version, text)

The Open Inference Protocol (v2), as KServe's MLflow runtime (MLServer) answers it, so a
client of a KServe InferenceService works unchanged against the local target:

    GET  /v2/health/live, /v2/health/ready, /v2 (server metadata)
    GET  /v2/models/{name}[/versions/{v}] (model metadata), .../ready
    POST /v2/models/{name}[/versions/{v}]/infer   one named tensor per column, shape [N] or
                        [N, 1], data as JSON (strings as BYTES); answers one output tensor,
                        `output-1`, shape [N, k] (the model's scores), FP64.

The v2 shapes are MLServer 1.7's, seen on the wire (tests/engine/test_protocols.py runs both):
its metadata names the output `output-0` while `infer` answers `output-1`, and each tensor
carries `parameters.content_type`. MLServer does not take the binary tensor extension (a
tritonclient with binary_data=True gets a 422 there), so here it is a 400 saying so.

Beside the wire formats, what both sides of a deployment must agree on without importing the
server: the identity proof a server gives the reconciler, and a model's logged input example.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import re
import uuid
from pathlib import Path
from typing import Any

CHALLENGE = re.compile(r"^[0-9a-f]{32,128}$")


def identity_proof(token: str, challenge: str, model: str, environment: str, pid: int) -> str:
    """What a model server answers to a challenge: HMAC-SHA256 under its token of the challenge
    and what it claims to be (model, environment, pid), so a look-alike can neither answer nor
    replay another server's answer."""
    message = f"mlops-serve/v1:{challenge}:{model}:{environment}:{pid}".encode()
    return hmac.new(token.encode(), message, hashlib.sha256).hexdigest()


def input_example(model_dir: Path) -> list[dict[str, Any]]:
    """The input example logged with an MLflow model, as records ([] when it has none)."""
    from mlflow.models import Model

    frame: Any = Model.load(str(model_dir)).load_input_example(str(model_dir))
    return json.loads(frame.to_json(orient="records")) if frame is not None else []


def columns_of(schema: Any) -> list[tuple[str, str]]:
    """(name, MLflow type name) of an input schema's columns, in order ([] without named ones):
    what the server checks requests against and what a request example is built from."""
    if schema is None or not schema.has_input_names():
        return []
    return [(str(c.name), str(getattr(c.type, "name", c.type))) for c in schema.inputs]


def signature_columns(model_dir: Path) -> list[tuple[str, str]]:
    """The columns of a logged model's input signature (`columns_of`), read from its MLmodel."""
    from mlflow.models import Model

    signature = Model.load(str(model_dir)).signature
    return columns_of(signature.inputs if signature is not None else None)


def v2_inputs(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Records as the Open Inference Protocol's input tensors: one [rows, 1] tensor per column,
    typed as the signature says (what MLServer and this project's server both read)."""
    return [
        {
            "name": name,
            "shape": [len(rows), 1],
            "datatype": V2_DATATYPES.get(kind, "BYTES"),
            "parameters": {"content_type": V2_CONTENT_TYPES.get(V2_DATATYPES.get(kind, "BYTES"), "np")},
            "data": [row[name] for row in rows],
        }
        for name, kind in columns
    ]


# MLflow's types -> the v2 datatype a column is sent as (what MLServer's metadata says).
V2_DATATYPES = {
    "long": "INT64",
    "integer": "INT32",
    "double": "FP64",
    "float": "FP32",
    "boolean": "BOOL",
    "string": "BYTES",
}
V2_OUTPUT = "output-1"  # what infer answers
V2_OUTPUT_METADATA = "output-0"  # what the metadata says (MLServer's own mismatch, kept)
V2_CONTENT_TYPES = {"BYTES": "str"}  # parameters.content_type of an input (np otherwise)
V2_PATH = re.compile(r"^/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?(?P<rest>/ready|/infer)?$")


class ProtocolError(ValueError):
    """A request that does not follow the protocol: a 400 naming what is wrong."""


def _records_of_columns(columns: dict[str, Any], where: str) -> list[dict[str, Any]]:
    lengths = {name: len(values) for name, values in columns.items() if isinstance(values, list)}
    if len(lengths) != len(columns) or len(set(lengths.values())) != 1:
        raise ProtocolError(f"{where}: expected every column a list of the same length")
    count = next(iter(lengths.values()), 0)
    return [{name: columns[name][i] for name in columns} for i in range(count)]


def mlflow_json(body: Any) -> list[dict[str, Any]]:
    """Records out of any of MLflow's JSON input formats."""
    if not isinstance(body, dict):
        raise ProtocolError(
            "body: expected a JSON object with dataframe_split, dataframe_records, instances or inputs"
        )
    keys = [k for k in ("dataframe_split", "dataframe_records", "instances", "inputs") if k in body]
    if len(keys) != 1:
        raise ProtocolError(
            "body: expected exactly one of dataframe_split, dataframe_records, instances, inputs "
            f"(got {', '.join(sorted(body)) or 'none'})"
        )
    value = body[keys[0]]
    if keys[0] == "dataframe_split":
        if (
            not isinstance(value, dict)
            or not isinstance(value.get("columns"), list)
            or not isinstance(value.get("data"), list)
        ):
            raise ProtocolError('dataframe_split: expected {"columns": [...], "data": [[...], ...]}')
        columns = _names(value["columns"], "dataframe_split.columns")
        rows = value["data"]
        if not all(isinstance(row, list) and len(row) == len(columns) for row in rows):
            raise ProtocolError(
                f"dataframe_split.data: expected rows of {len(columns)} values (one per column)"
            )
        return [dict(zip(columns, row, strict=True)) for row in rows]
    if isinstance(value, dict) and keys[0] in ("inputs", "instances"):
        return _records_of_columns(value, keys[0])  # columnar: {column: [values]}
    if isinstance(value, list):
        return value
    raise ProtocolError(f"{keys[0]}: expected a list of records or an object of columns")


def _names(names: Any, where: str) -> list[str]:
    """Column or tensor names: strings, each once (a repeated name would silently lose a column)."""
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ProtocolError(f"{where}: expected a list of column names (strings)")
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ProtocolError(f"{where}: {name!r} named twice (expected each column once)")
        seen.add(name)
    return names


def mlflow_csv(text: str, columns: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Records out of CSV with a header, each value typed by its column's MLflow type. A field
    over csv's limit (128 KiB) or a header naming a column twice is refused."""
    reader = csv.reader(io.StringIO(text))
    kinds = dict(columns)
    records = []
    number = 1
    try:
        header = _names(next(reader, []), "csv header")
        for number, row in enumerate(reader, 2):
            if not row:
                continue  # a blank line, as csv.DictReader skips it
            if len(row) > len(header):
                raise ProtocolError(f"csv line {number}: more values than columns in the header")
            record: dict[str, Any] = {}
            for name, value in zip(header, [*row, *[None] * (len(header) - len(row))], strict=True):
                record[name] = _typed(value, kinds.get(name, "string"), f"csv line {number}, {name}")
            records.append(record)
    except csv.Error as exc:
        raise ProtocolError(f"csv line {number + 1}: {exc}") from None
    return records


def _typed(value: str | None, kind: str, where: str) -> Any:
    if value is None or value == "":
        return None
    try:
        if kind in ("long", "integer"):
            return int(value)
        if kind in ("double", "float"):
            return float(value)
    except ValueError:
        return value  # the signature check names the field and what it expected
    if kind == "boolean":
        return {"true": True, "false": False}.get(value.strip().lower(), value)
    return value


def v2_request(body: Any, columns: list[tuple[str, str]]) -> tuple[list[dict[str, Any]], str | None]:
    """Records out of an inference request (one named tensor per column), and its id."""
    del columns  # names and types are checked with the records, like every route's
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list) or not body["inputs"]:
        raise ProtocolError(
            'inputs: expected a non-empty list of tensors {"name", "shape", "datatype", "data"}'
        )
    tensors: dict[str, list[Any]] = {}
    for index, tensor in enumerate(body["inputs"]):
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
            raise ProtocolError(f"inputs[{index}]: expected a tensor with a name")
        shape, data = tensor.get("shape"), tensor.get("data")
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise ProtocolError(f"inputs[{index}] ({tensor['name']}).shape: expected a list of sizes")
        if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
            raise ProtocolError(
                f"inputs[{index}] ({tensor['name']}).shape: {shape} (expected [N] or [N, 1]: one column)"
            )
        flat = _flatten(data)
        if flat is None or len(flat) != (shape[0] if shape else 0):
            raise ProtocolError(
                f"inputs[{index}] ({tensor['name']}).data: expected {shape[0] if shape else 0} values"
            )
        if tensor["name"] in tensors:
            raise ProtocolError(f"inputs[{index}] ({tensor['name']}): named twice (expected each input once)")
        tensors[tensor["name"]] = flat
    records = _records_of_columns(tensors, "inputs")
    request_id = body.get("id")
    return records, str(request_id) if request_id is not None else None


def _flatten(data: Any, depth: int = 8) -> list[Any] | None:
    """A tensor's data, flat (row-major), or None when it is not a list of lists of values at
    most `depth` deep (a column is [N] or [N, 1]: deeper nesting is never a tensor of ours)."""
    if not isinstance(data, list):
        return None
    flat: list[Any] = []
    stack: list[tuple[list[Any], int, int]] = [(data, 0, 1)]
    while stack:
        items, index, level = stack.pop()
        while index < len(items):
            item = items[index]
            index += 1
            if isinstance(item, list):
                if level >= depth:
                    return None
                stack.append((items, index, level))
                stack.append((item, 0, level + 1))
                break
            flat.append(item)
    return flat


# The token KServe's logger presents to `mlops collect` (the password of the logger URL's user
# info, sent by Go's HTTP client as HTTP Basic): in the collector's and the reconciler's
# environments, never in a file.
COLLECT_TOKEN = "MLOPS_COLLECT_TOKEN"

# A client's request id is echoed in a response header (X-Request-Id) and logged: it is used only
# when it is short and printable ASCII without spaces (no CR/LF to split the response with, no
# character a header cannot carry); any other id is replaced by one the server makes.
REQUEST_ID = re.compile(r"[\x21-\x7e]{1,128}")


def request_id(*offered: str | None) -> str:
    """The id a request is known by: the first one the client offered (its body's `id`, then its
    X-Request-Id header) that REQUEST_ID accepts, else a new one."""
    for value in offered:
        if value is not None and REQUEST_ID.fullmatch(value):
            return value
    return uuid.uuid4().hex


def v2_response(model: str, version: int, request_id: str, predictions: list[Any]) -> dict[str, Any]:
    """The inference response: the scores as one FP64 tensor, shape [N, k] (or [N])."""
    rows = [row if isinstance(row, list) else [row] for row in predictions]
    width = len(rows[0]) if rows else 0
    flat = [float(value) for row in rows for value in row]
    shape = [len(rows), width] if width != 1 else [len(rows)]
    return {
        "model_name": model,
        "model_version": str(version),
        "id": request_id,
        "parameters": {"content_type": "np"},
        "outputs": [
            {
                "name": V2_OUTPUT,
                "shape": shape,
                "datatype": "FP64",
                "parameters": {"content_type": "np"},
                "data": flat,
            }
        ],
    }


def v2_metadata(
    model: str, versions: list[int], columns: list[tuple[str, str]], width: int
) -> dict[str, Any]:
    """Model metadata: one input per signature column, one output of `width` scores."""
    inputs = []
    for name, kind in columns:
        datatype = V2_DATATYPES.get(kind, "BYTES")
        content = V2_CONTENT_TYPES.get(datatype, "np")
        inputs.append(
            {"name": name, "datatype": datatype, "shape": [-1, 1], "parameters": {"content_type": content}}
        )
    return {
        "name": model,
        "versions": [str(v) for v in versions],
        "platform": "mlflow",
        "inputs": inputs,
        "outputs": [
            {
                "name": V2_OUTPUT_METADATA,
                "datatype": "FP64",
                "shape": [-1, width] if width != 1 else [-1],
                "parameters": {"content_type": "np"},
            }
        ],
        "parameters": {"content_type": "pd"},
    }


def error_body(message: str, route: str) -> dict[str, Any]:
    """An error in the shape each protocol's clients read: MLflow's {error_code, message}, the v2
    protocol's {error}, and ours (both keys: a client of either finds its own)."""
    if route == "mlflow":
        return {"error_code": "BAD_REQUEST", "message": message}
    return {"error": message}


def decode(
    route: str, raw: bytes, headers: Any, columns: list[tuple[str, str]]
) -> tuple[list[dict[str, Any]], str | None]:
    """(records, client's request id) of a request on `route` (predict, mlflow, v2)."""
    mime = str(headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
    if route == "v2" and headers.get("Inference-Header-Content-Length") is not None:
        raise ProtocolError(
            "Inference-Header-Content-Length: binary tensor data is not taken (expected JSON data, "
            "as KServe's MLflow runtime: tritonclient's set_data_from_numpy(..., binary_data=False))"
        )
    if route == "mlflow" and mime == "text/csv":
        try:
            return mlflow_csv(raw.decode("utf-8"), columns), None
        except UnicodeDecodeError:
            raise ProtocolError("body: not UTF-8 text (expected CSV)") from None
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"body: not JSON ({exc})") from None
    except RecursionError:
        raise ProtocolError("body: JSON nested too deep") from None
    if route == "mlflow":
        return mlflow_json(body), None
    if route == "v2":
        return v2_request(body, columns)
    return body, None  # /predict: the server's own forms, checked as they are


def not_allowed(handler: Any) -> None:
    """A 405 with a JSON body (none to HEAD), for any method but GET and POST: bound as
    do_PUT, do_DELETE, ... on every server here."""
    body = json.dumps({"error": f"{handler.command}: not allowed (expected GET or POST)"}).encode()
    handler.send_response(405)
    handler.send_header("Allow", "GET, POST")
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(body)
