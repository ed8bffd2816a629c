"""STS (query protocol: form-encoded POST, XML answers): GetCallerIdentity."""

from __future__ import annotations

import uuid
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from aiohttp import web

from fleetsim.localcore.api.body import read_capped
from fleetsim.localcore.errors import AwsError

_NS = "https://sts.amazonaws.com/doc/2011-06-15/"


def error_response(code: str, message: str, status: int = 400) -> web.Response:
    body = (f'<ErrorResponse xmlns="{_NS}"><Error><Type>Sender</Type><Code>{code}</Code>'
            f"<Message>{escape(message)}</Message></Error>"
            f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>")
    return web.Response(status=status, text=body, content_type="text/xml")


class StsService:
    """Any credentials are accepted; the caller is the root user of the local account."""

    def __init__(self, account_id: str):
        self.account_id = account_id

    async def handle(self, request: web.Request) -> web.Response:
        params = dict(parse_qsl(request.query_string))
        if request.method == "POST":
            try:
                body = await read_capped(request)
            except AwsError as e:
                return error_response(e.code, e.message, e.status or 400)
            params |= dict(parse_qsl(body.decode(errors="replace")))
        action = params.get("Action")
        if action == "GetCallerIdentity":
            return self._get_caller_identity()
        return error_response("InvalidAction", f"Could not find operation {action} for version "
                      f"{params.get('Version', '2011-06-15')}")

    def _get_caller_identity(self) -> web.Response:
        account = self.account_id
        body = (f'<GetCallerIdentityResponse xmlns="{_NS}"><GetCallerIdentityResult>'
                f"<Arn>arn:aws:iam::{account}:root</Arn><UserId>{account}</UserId>"
                f"<Account>{account}</Account></GetCallerIdentityResult>"
                f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
                "</GetCallerIdentityResponse>")
        return web.Response(text=body, content_type="text/xml")
