#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets (fuzz/corpus/<target>/<name>). Re-running it rewrites
these seeds only; inputs added by hand (such as crash regressions) are left alone."""
import os

HERE = os.path.dirname(os.path.abspath(__file__))
SEP = b"\xff"  # the frame separator of fuzz/FrameTargets.swift

JSON_SEEDS = {
    "empty": b"",
    "null": b"null",
    "literals": b"[true,false,null]",
    "bad-literal": b"[tru]",
    "request": b'["gg",{"kind":"session","request":{"uuid":"c1","labels":["a","b"],"extra":{}}}]',
    "container-send": b'["cs",["c1","op",{"x":[1,2.5,-3e-7,"\\u00e9"]}]]',
    "whitespace": b' \t\r\n[ 1 , "a" , { "k" : [ ] } ]\n ',
    "object": b'{"a":1,"b":{"c":[null,{}]},"a":2}',
    "numbers": b"[0,-0,1.0,1e22,1e23,9007199254740993,-123.456e-10,0.1,5e-324,1.7976931348623157e308]",
    "huge-numbers": b"[1e309,-1e400,123456789012345678901234567890,0.0000000000000000000000000000001e-300]",
    "long-mantissa": b"[3.14159265358979323846264338327950288419716939937510582097494459]",
    "bad-numbers": b"[01,-,1.,.5,1e,1e+,+1,0x10,NaN,Infinity]",
    "escapes": b'["\\"\\\\\\/\\b\\f\\n\\r\\t","\\u0041\\u00e9\\u4e2d\\ud83d\\ude00"]',
    "bad-escapes": b'["\\x","\\u12","\\ud800","\\udc00x","\\ud800\\u0041"]',
    "utf8": "[\"héllo\",\"中文\",\"😀\",\"\u007f\"]".encode(),
    "bad-utf8": b'["\xc0\xaf","\xed\xa0\x80","\xf4\x90\x80\x80","\xe2\x82","\x80","\xff"]',
    "control-char": b'["a\x01b"]',
    "unterminated-string": b'["abc',
    "unterminated-array": b"[1,2",
    "trailing-comma": b"[1,2,]",
    "trailing-garbage": b"[1] x",
    "two-values": b"1 2",
    "string-top": b'"just a string"',
    "number-top": b"-12.5e3",
    "long-string": b'["' + b"abcdefgh" * 512 + b'"]',
    "long-string-escaped": b'["' + b"abc\\n\\u00e9" * 200 + b'"]',
    "deep-ok": b"[" * 511 + b"]" * 511,
    "deep-too-deep": b"[" * 513 + b"]" * 513,
    "deep-objects": b'{"a":' * 300 + b"1" + b"}" * 300,
    "deep-unclosed": b"[{" * 200,
    "wide-array": b"[" + b",".join(b"%d" % i for i in range(600)) + b"]",
}

def frames(*parts):
    return SEP.join(p if isinstance(p, bytes) else p.encode() for p in parts)

CLIENT_SEEDS = {
    "hello": frames("0", "c0ffee-client", '{"aliveTimeout":3}', ""),
    "hello-fraction": frames("0", "c", '{"aliveTimeout":0.0001}', ""),
    "hello-huge-timeout": frames("0", "c", '{"aliveTimeout":1e300}', ""),
    "hello-bad-timeout": frames("0", "c", '{"aliveTimeout":"3"}', ""),
    "hello-bad-json": frames("0", "c", "{aliveTimeout:3", ""),
    "hello-no-payload": frames("0", "client"),
    "hello-empty-id": frames("0", "", "{}", ""),
    "hello-bad-utf8-id": frames("0", b"\xc3\x28id", "{}", ""),
    "request": frames("1", "client-1", '["al",{}]'),
    "request-no-payload": frames("1", "client-2"),
    "request-no-id": frames("1"),
    "request-empty-id": frames("1", "", '["al",{}]'),
    "request-extra": frames("1", "client-3", '["al",{}]', "x", "y"),
    "response": frames("2", "srv-1", '"ok"'),
    "response-error": frames("3", "srv-2", '{"message":"boom","stack":""}'),
    "event": frames("4", "", '{"x":1}', ""),
    "event-short": frames("4"),
    "ping": frames("5", "", "", ""),
    "close": frames("8", "", "", ""),
    "pong-wrong-side": frames("6", "server", ""),
    "bad-op": frames("12", "x"),
    "bad-op-long": frames("x" * 100 + "\x00\x7f\"\\", "x"),
    "empty": b"",
}

SERVER_SEEDS = {
    "hello": frames("0", "server-uuid", ""),
    "hello-short": frames("0"),
    "request": frames("1", "server-uuid-1", '["gg",["agent",["kind",{}]]]'),
    "request-empty-id": frames("1", "", "[]"),
    "response": frames("2", "client-1", '["c1","{}"]'),
    "response-error": frames("3", "client-2", '{"message":"no agent","stack":""}'),
    "event": frames("4", "", '{"agents":[],"containers":[]}'),
    "pong": frames("6", "server-uuid", ""),
    "retry": frames("7", "client-3", "26"),
    "retry-bad-count": frames("7", "client-4", "1.5"),
    "retry-huge-count": frames("7", "client-5", "1e30"),
    "retry-no-count": frames("7", "client-6"),
    "ask-hello": frames("9", "server-uuid", ""),
    "ping-wrong-side": frames("5", "", "", ""),
    "close-wrong-side": frames("8"),
    "bad-op": frames("", "x"),
    "empty": b"",
}

def write(target, seeds):
    directory = os.path.join(HERE, "corpus", target)
    os.makedirs(directory, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(directory, name), "wb") as f:
            f.write(data)

write("json-parse", JSON_SEEDS)
write("json-scan", JSON_SEEDS)
write("client-frames", CLIENT_SEEDS)
write("server-frames", SERVER_SEEDS)
