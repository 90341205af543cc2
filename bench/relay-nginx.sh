#!/usr/bin/env bash
# The floor for bench/ttfb.py: nginx relaying the paced upstream unbuffered, pinned where the
# gateway runs, so the TTFB table can tell the extra hop any proxy pays (a second process,
# a second CPU to wake) from TokenByte's own work.
#   bench/relay-nginx.sh PORT UPSTREAM_PORT DIR   (execs nginx in the foreground; stop it with SIGTERM)
set -euo pipefail
port=${1:?port} upstream=${2:?upstream port} dir=${3:?dir}
mkdir -p "$dir/tmp"
cat >"$dir/nginx.conf" <<CONF
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
    upstream paced { server 127.0.0.1:$upstream; keepalive 16; }
    server {
        listen 127.0.0.1:$port;
        location / {
            proxy_pass http://paced;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }
    }
}
CONF
exec nginx -c "$dir/nginx.conf" -p "$dir" -g 'daemon off;'
