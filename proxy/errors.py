"""The gateway's one error hierarchy, rendered in OpenAI's shape (Anthropic's on /v1/messages)."""

from http import HTTPStatus

import orjson


class GatewayError(Exception):
    status: int = HTTPStatus.INTERNAL_SERVER_ERROR
    type: str = "server_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.headers = headers or []

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


class InvalidRequest(GatewayError):
    status = HTTPStatus.BAD_REQUEST
    type = "invalid_request_error"
    code = "invalid_request"


class AuthenticationFailed(GatewayError):
    status = HTTPStatus.UNAUTHORIZED
    type = "invalid_request_error"
    code = "invalid_api_key"


class PaymentRequired(GatewayError):
    status = HTTPStatus.PAYMENT_REQUIRED
    type = "insufficient_quota"
    code = "insufficient_quota"


class PermissionDenied(GatewayError):
    status = HTTPStatus.FORBIDDEN
    type = "permission_error"
    code = "permission_denied"


class NotFound(GatewayError):
    status = HTTPStatus.NOT_FOUND
    type = "invalid_request_error"
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class MethodNotAllowed(GatewayError):
    status = HTTPStatus.METHOD_NOT_ALLOWED
    type = "invalid_request_error"
    code = "method_not_allowed"


class PayloadTooLarge(GatewayError):
    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    type = "invalid_request_error"
    code = "request_too_large"


class RateLimited(GatewayError):
    status = HTTPStatus.TOO_MANY_REQUESTS
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class UpstreamError(GatewayError):
    status = HTTPStatus.BAD_GATEWAY
    type = "upstream_error"
    code = "upstream_error"


class ServiceUnavailable(GatewayError):
    status = HTTPStatus.SERVICE_UNAVAILABLE
    type = "server_error"
    code = "service_unavailable"


class UpstreamTimeout(GatewayError):
    status = HTTPStatus.GATEWAY_TIMEOUT
    type = "timeout_error"
    code = "upstream_timeout"
