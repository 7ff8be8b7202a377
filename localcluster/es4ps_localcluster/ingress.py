"""A stand-in for an ingress controller on the local cluster: TLS in front of the portal's Service.

No ingress controller image can be pulled here, so `make demo` and the e2e
test (both through `demo.start_ingress`) put this process where the Ingress
would be: it terminates HTTPS with the portal's certificate (issued by
cert-manager, read from the portal's Secret) and forwards each request to the
portal Service with the headers an ingress adds (X-Forwarded-For,
X-Forwarded-Proto, X-Forwarded-Host), as the portal expects behind one
trusted proxy.

    python -m es4ps_localcluster.ingress --listen 127.0.0.1:443 --cert tls.crt --key tls.key --backend URL
"""

from __future__ import annotations

import argparse
import ssl
import sys

from aiohttp import ClientSession, ClientTimeout, web

# Hop-by-hop headers (RFC 9110 7.6.1) are the proxy's own business, not forwarded.
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "host",
}


def make_app(backend: str) -> web.Application:
    app = web.Application(client_max_size=1024 * 1024)

    async def start_client(app: web.Application):
        app["client"] = ClientSession(timeout=ClientTimeout(total=60), auto_decompress=False)
        yield
        await app["client"].close()

    async def forward(request: web.Request) -> web.StreamResponse:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        headers["Host"] = request.host
        headers["X-Forwarded-Proto"] = "https"
        headers["X-Forwarded-Host"] = request.host
        headers["X-Forwarded-For"] = request.remote or ""
        async with request.app["client"].request(
            request.method,
            backend + request.rel_url.raw_path_qs,
            headers=headers,
            data=await request.read(),
            allow_redirects=False,
        ) as upstream:
            body = await upstream.read()
            response = web.Response(status=upstream.status, body=body)
            for key, value in upstream.headers.items():
                if key.lower() not in HOP_BY_HOP:
                    response.headers.add(key, value)
            return response

    app.cleanup_ctx.append(start_client)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listen", required=True, help="address:port to serve HTTPS on")
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--backend", required=True, help="http://<portal service address>:<port>")
    args = parser.parse_args(argv)
    host, port = args.listen.rsplit(":", 1)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.cert, args.key)
    web.run_app(
        make_app(args.backend.rstrip("/")),
        host=host,
        port=int(port),
        ssl_context=context,
        print=lambda message: print(message, flush=True),
        access_log=None,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
