"""tools/bench/responder.cc, the constant-response backend of `tools/dev bench proxy`:
it must answer every request of a pipelined batch with the same response, skip request
bodies, honour Connection: close and refuse what it does not understand by closing."""

import os
import subprocess
import unittest

from harness import BUILD, connect, read_response, read_until_close

RESPONDER = os.path.join(BUILD, "tools", "bench", "atlas-bench-responder")


class Responder(unittest.TestCase):
    def setUp(self):
        self.proc = subprocess.Popen([RESPONDER, "--port", "0", "--size", "1000"], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        line = self.proc.stdout.readline().decode()
        self.assertTrue(line.startswith("listening on 127.0.0.1:"), line)
        self.port = int(line.strip().rsplit(":", 1)[1])

    def tearDown(self):
        self.proc.kill()
        self.proc.wait(timeout=10)
        self.proc.stdout.close()
        self.proc.stderr.close()

    def test_pipelined_batch_with_bodies(self):
        with connect(self.port) as s:
            s.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                      b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                      b"GET /c HTTP/1.1\r\nHost: x\r\n\r\n")
            for _ in range(3):
                r = read_response(s)
                self.assertEqual(r.status, 200)
                self.assertEqual(r.body, b"x" * 1000)
                self.assertFalse(r.closes())

    def test_split_head_and_body(self):
        with connect(self.port) as s:
            for piece in (b"POST / HTTP/1.1\r\nCont", b"ent-Length: 3\r\n\r\nab", b"cGET / HTTP/1.1\r\n\r\n"):
                s.sendall(piece)
            self.assertEqual(read_response(s).status, 200)
            self.assertEqual(read_response(s).status, 200)

    def test_connection_close(self):
        with connect(self.port) as s:
            s.sendall(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
            data = read_until_close(s)
            self.assertTrue(data.startswith(b"HTTP/1.1 200 OK\r\n"))
            self.assertTrue(data.endswith(b"x" * 1000))

    def test_chunked_request_is_refused_by_closing(self):
        with connect(self.port) as s:
            s.sendall(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
            self.assertEqual(read_until_close(s), b"")


if __name__ == "__main__":
    unittest.main()
