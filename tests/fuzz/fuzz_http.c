/* fuzz_http.c - libFuzzer target for the HTTP/1.1 request path of
 * src/server/http.c: a real listener on 127.0.0.1 in this process, one
 * client connection per input; the input is written, the write side shut,
 * and the loop run until the server has closed the connection.  The handler
 * answers every request (sometimes streamed) so pipelining, chunked bodies,
 * caps and the close paths are all exercised. */
#include "server/http.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static uv_loop_t *loop;
static al_http_server_t srv;
static uint16_t port;

static void handle(al_http_req_t *r)
{
    char body[64];
    int n = snprintf(body, sizeof body, "{\"len\":%zu,\"hdrs\":%zu}", r->body.len, r->n_hdrs);
    if (r->body.len % 2) {
        al_http_stream_start(r, 200, "text/plain", NULL, 0);
        al_http_stream_write(r, body, (size_t)n);
        al_http_stream_end(r);
    } else {
        const al_http_hdr_t *h = al_http_header(r, "host");
        const char *hdrs[] = {"X-Fuzz: 1"};
        al_http_respond(r, h ? 200 : 404, "application/json", hdrs, 1, body, (size_t)n);
    }
}

static void setup(void)
{
    char err[128];
    loop = uv_default_loop();
    srv.handler = handle;
    srv.limits = (al_http_limits_t){4096, 16384, 5000, 5000, 5000};
    srv.max_connections = 16;
    for (port = 20000 + (uint16_t)(getpid() % 20000);; port++) {
        if (al_http_server_listen(&srv, loop, "127.0.0.1", port, false, err, sizeof err) == AL_OK)
            break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!loop) setup();
    if (size > 65536) return 0;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        /* Out of local ports or backlog: not the code under test. */
        close(fd);
        for (int i = 0; i < 100; i++) uv_run(loop, UV_RUN_NOWAIT);
        return 0;
    }
    fcntl(fd, F_SETFL, O_NONBLOCK);
    size_t off = 0;
    char sink[65536];
    /* Interleave writing the input, running the loop and draining replies. */
    for (int spins = 0; spins < 100000; spins++) {
        if (off < size) {
            ssize_t w = write(fd, data + off, size - off);
            if (w > 0) off += (size_t)w;
            if (off == size) shutdown(fd, SHUT_WR);
        } else if (size == 0 && spins == 0) {
            shutdown(fd, SHUT_WR);
        }
        uv_run(loop, UV_RUN_NOWAIT);
        ssize_t r = read(fd, sink, sizeof sink);
        if (r == 0 && off == size && srv.n_conns == 0) break;
        if (r < 0 && off == size && srv.n_conns == 0 && spins > 10) break;
    }
    /* Close with a reset: a normal close after our SHUT_WR would leave the
     * client side in TIME_WAIT, and at ~15,000 connections a second the
     * local port range runs out within seconds. */
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
    /* Let the server notice and free everything. */
    for (int i = 0; i < 100 && srv.n_conns; i++) uv_run(loop, UV_RUN_NOWAIT);
    return 0;
}
