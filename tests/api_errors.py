"""Reading the errors boto3 raises: (code, message), and "expect this code"."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError


def error_of(raised: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    error = raised.value.response["Error"]
    return str(error["Code"]), str(error.get("Message", ""))


def expect_error(code: str, operation: Callable[..., Any], *args: Any, **arguments: Any) -> str:
    """Call `operation` and expect ECR's error `code`; return the error's message."""
    with pytest.raises(ClientError) as raised:
        operation(*args, **arguments)
    assert error_of(raised)[0] == code, error_of(raised)
    return error_of(raised)[1]
