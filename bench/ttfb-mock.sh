#!/usr/bin/env bash
# A streaming upstream that paces its events, for bench/ttfb.py: nginx + Lua (the shared
# harness's packages), first event at once, then one every 20 ms, then usage and [DONE].
#   bench/ttfb-mock.sh PORT DIR      (execs nginx in the foreground; stop it with SIGTERM)
set -euo pipefail
port=${1:?port} dir=${2:?dir}
mkdir -p "$dir/tmp"
cat >"$dir/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    client_body_buffer_size 1m;
    keepalive_requests 100000000;
    server {
        listen 127.0.0.1:$port;
        location = /v1/chat/completions {
            content_by_lua_block {
                ngx.req.read_body()
                ngx.header["Content-Type"] = "text/event-stream"
                local head = '{"id":"chatcmpl-ttfb","object":"chat.completion.chunk","created":1700000000,"model":"mock-gpt",'
                for i = 0, 9 do
                    ngx.print('data: ' .. head .. '"choices":[{"index":0,"delta":{"content":"t' .. i .. '"},"finish_reason":null}]}\n\n')
                    ngx.flush(true)
                    ngx.sleep(0.02)
                end
                ngx.print('data: ' .. head .. '"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":10,"total_tokens":15}}\n\ndata: [DONE]\n\n')
            }
        }
    }
}
CONF
exec nginx -c "$dir/nginx.conf" -p "$dir" -g 'daemon off;'
