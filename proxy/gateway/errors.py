"""The gateway's one error hierarchy, rendered in OpenAI's shape (Anthropic's on /v1/messages)."""

from http import HTTPStatus

import orjson

# Anthropic's SDKs read errors in Anthropic's shape; everything else speaks OpenAI's.
ANTHROPIC_PATHS = "/v1/messages"


class GatewayError(Exception):
    status: int = HTTPStatus.INTERNAL_SERVER_ERROR
    type: str = "server_error"
    code: str | None = None
    # The error's type in Anthropic's shape (/v1/messages): what Anthropic's SDKs expect.
    anthropic_type: str = "api_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.headers = headers or []
        # For the operator's log line only, never rendered: what the upstream said or raised.
        self.detail = detail

    def openai_body(self) -> bytes:
        return orjson.dumps(
            {
                "error": {
                    "message": self.message,
                    "type": self.type,
                    "code": self.code,
                    "param": self.param,
                }
            }
        )

    def anthropic_payload(self) -> dict[str, object]:
        return {"type": "error", "error": {"type": self.anthropic_type, "message": self.message}}

    def anthropic_body(self) -> bytes:
        return orjson.dumps(self.anthropic_payload())

    def body_for(self, path: str) -> bytes:
        """The body in the shape the client of `path` reads."""
        return self.anthropic_body() if path.startswith(ANTHROPIC_PATHS) else self.openai_body()


class InvalidRequest(GatewayError):
    status = HTTPStatus.BAD_REQUEST
    type = "invalid_request_error"
    code = "invalid_request"
    anthropic_type = "invalid_request_error"


class AuthenticationFailed(GatewayError):
    status = HTTPStatus.UNAUTHORIZED
    type = "invalid_request_error"
    code = "invalid_api_key"
    anthropic_type = "authentication_error"


class PaymentRequired(GatewayError):
    status = HTTPStatus.PAYMENT_REQUIRED
    type = "insufficient_quota"
    code = "insufficient_quota"
    anthropic_type = "billing_error"


class PermissionDenied(GatewayError):
    status = HTTPStatus.FORBIDDEN
    type = "permission_error"
    code = "permission_denied"
    anthropic_type = "permission_error"


class NotFound(GatewayError):
    status = HTTPStatus.NOT_FOUND
    type = "invalid_request_error"
    code = "not_found"
    anthropic_type = "not_found_error"


class ModelNotFound(NotFound):
    code = "model_not_found"


class MethodNotAllowed(GatewayError):
    status = HTTPStatus.METHOD_NOT_ALLOWED
    type = "invalid_request_error"
    code = "method_not_allowed"
    anthropic_type = "invalid_request_error"


class RequestTimeout(GatewayError):
    status = HTTPStatus.REQUEST_TIMEOUT
    type = "invalid_request_error"
    code = "request_timeout"
    anthropic_type = "timeout_error"


class HeadersTooLarge(GatewayError):
    status = HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE
    type = "invalid_request_error"
    code = "headers_too_large"
    anthropic_type = "invalid_request_error"


class PayloadTooLarge(GatewayError):
    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    type = "invalid_request_error"
    code = "request_too_large"
    anthropic_type = "request_too_large"


class RateLimited(GatewayError):
    status = HTTPStatus.TOO_MANY_REQUESTS
    type = "rate_limit_error"
    code = "rate_limit_exceeded"
    anthropic_type = "rate_limit_error"


class UpstreamError(GatewayError):
    status = HTTPStatus.BAD_GATEWAY
    type = "upstream_error"
    code = "upstream_error"
    anthropic_type = "api_error"


class ServiceUnavailable(GatewayError):
    status = HTTPStatus.SERVICE_UNAVAILABLE
    type = "server_error"
    code = "service_unavailable"
    anthropic_type = "overloaded_error"


class UpstreamTimeout(GatewayError):
    status = HTTPStatus.GATEWAY_TIMEOUT
    type = "timeout_error"
    code = "upstream_timeout"
    anthropic_type = "timeout_error"
