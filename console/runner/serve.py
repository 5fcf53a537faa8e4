"""``baton serve [RUN]``: the console on a live run in a web browser (textual-serve), for
the war-room screen.

Each browser tab gets its own ``baton attach RUN`` process behind a websocket. Read-only
(``attach --read-only``: the runner refuses its actions) unless ``--control``; then a
token printed at start is needed: ``http://HOST:PORT/?token=TOKEN`` opens a console that
may act, the bare address still only watches.
"""

from __future__ import annotations

import hmac
import secrets
import shlex
import sys
from typing import Any


def serve(run_id: str, *, host: str = "127.0.0.1", port: int = 8765, control: bool = False,
          theme: str | None = None) -> int:
    try:
        server = make_server(run_id, host=host, port=port, control=control, theme=theme)
    except ImportError as exc:
        from console.commands.shared import UsageError

        raise UsageError(f"baton serve needs textual-serve ({exc}); pip install "
                          f"textual-serve") from None
    where = f"http://{host}:{port}/"
    print(f"serving run {run_id} on {where} "
          f"({'control with the token below' if control else 'read-only'})", flush=True)
    if server.token is not None:
        print(f"control: {where}?token={server.token}", flush=True)
    print(f"from another machine: ssh -L {port}:127.0.0.1:{port} THIS_HOST, then open "
          f"http://127.0.0.1:{port}/", flush=True)
    server.serve()
    return 0


def make_server(run_id: str, *, host: str, port: int, control: bool,
                theme: str | None = None) -> Any:
    from aiohttp import web
    from textual_serve.server import Server

    base = [sys.executable, "-m", "console", "attach", run_id]
    if theme:
        base += ["--theme", theme]

    class BatonServer(Server):
        def __init__(self) -> None:
            super().__init__(shlex.join([*base, "--read-only"]), host=host, port=port,
                             title=f"baton · run {run_id}")
            self.token = secrets.token_urlsafe(18) if control else None
            self.control_command = shlex.join(base)

        def initialize_logging(self) -> None:
            return None  # the printed lines above say what there is to know

        async def on_startup(self, app: web.Application) -> None:
            return None

        async def _make_app(self) -> web.Application:
            app = await super()._make_app()
            app.router.add_get("/ws/{token}", self.handle_control, name="control")
            return app

        def _allowed(self, token: str | None) -> bool:
            return (self.token is not None and token is not None
                    and hmac.compare_digest(token.encode(), self.token.encode()))

        async def handle_index(self, request: web.Request) -> Any:
            response = await super().handle_index(request)
            token = request.query.get("token")
            if self._allowed(token) and isinstance(response, web.Response):
                text = response.text or ""
                plain = f"{self.public_url}/ws"
                response.text = text.replace(f'"{_ws(plain)}"', f'"{_ws(plain)}/{token}"')
            return response

        async def handle_control(self, request: web.Request) -> web.WebSocketResponse:
            if not self._allowed(request.match_info.get("token")):
                raise web.HTTPForbidden(text="wrong token")
            return await self._session(request, self.control_command)

        async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
            return await self._session(request, self.command)

        async def _session(self, request: web.Request, command: str) -> web.WebSocketResponse:
            """textual-serve's websocket handler, with the command of this connection."""
            import asyncio

            from textual_serve.app_service import AppService
            from textual_serve.server import to_int

            websocket = web.WebSocketResponse(heartbeat=15)
            width = to_int(request.query.get("width", "80"), 80)
            height = to_int(request.query.get("height", "24"), 24)
            service: AppService | None = None
            try:
                await websocket.prepare(request)
                service = AppService(command, write_bytes=websocket.send_bytes,
                                     write_str=websocket.send_str,
                                     close=websocket.close,  # type: ignore[arg-type]
                                     download_manager=self.download_manager, debug=False)
                await service.start(width, height)
                await self._process_messages(websocket, service)
            except asyncio.CancelledError:
                await websocket.close()
            finally:
                if service is not None:
                    await service.stop()
            return websocket

    return BatonServer()


def _ws(url: str) -> str:
    return ("wss:" if url.startswith("https") else "ws:") + url.split(":", 1)[1]
