"""What reading an S3 object again would do, decided by the error's type, never its words (N10): a CSV cell that
reads ``timeout`` is content, S3's 403 is a refusal a retry does not change, throttling and broken connections are
transient, a key deleted since the listing is gone. The errors are the real ones: botocore's and pyarrow's."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.csv as csv
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from mlops_ops.lake.s3_ingest import ContentError, classify


def _s3(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       "GetObject")  # fmt: skip


def _arrow_error(body: bytes) -> Exception:
    convert = csv.ConvertOptions(column_types=pa.schema([("id", pa.string()), ("n", pa.int64())]))
    try:
        csv.read_csv(io.BytesIO(body), convert_options=convert)
    except Exception as err:
        return err
    raise AssertionError("pyarrow read it")


@pytest.mark.parametrize(
    ("err", "kind"),
    [
        (_arrow_error(b"id,n\nr1,timeout\n"), "content"),  # the words of a network error, in a cell
        (_arrow_error(b"id,n\nr1,connection reset by peer 503\n"), "content"),
        (ContentError("x"), "content"),
        (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), "content"),
        (_s3("AccessDenied", 403), "refused"),
        (_s3("InvalidAccessKeyId", 403), "refused"),
        (_s3("InvalidRange", 416), "refused"),
        (_s3("NoSuchKey", 404), "gone"),
        (_s3("SlowDown", 503), "transient"),
        (_s3("InternalError", 500), "transient"),
        (_s3("RequestTimeout", 400), "transient"),
        (_s3("PreconditionFailed", 412), "transient"),  # replaced mid-read: the next listing has the new ETag
        (EndpointConnectionError(endpoint_url="http://s3.down"), "transient"),
        (ReadTimeoutError(endpoint_url="http://s3"), "transient"),
        (ConnectionResetError("peer"), "transient"),
    ],
)
def test_errors_are_classified_by_type_not_words(err: Exception, kind: str) -> None:
    assert classify(err) == kind
