# Sourced by bin/test: the end-to-end tests drive Debian's Chromium headless (/usr/bin/chromium).
# A fresh machine does not have it: install it from Debian's packages when we can (root, apt). The
# page is also tested in Chinese: a CJK font (fonts-wqy-microhei, 4 MB) makes its screenshots legible.
if [ ! -x /usr/bin/chromium ] || ! fc-list :lang=zh 2>/dev/null | grep -q .; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "Installing Debian's chromium (and a CJK font) for the end-to-end tests"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-wqy-microhei >/dev/null
    elif [ ! -x /usr/bin/chromium ]; then
        echo "bin/test: /usr/bin/chromium is missing and cannot be installed here (needs root and apt-get)" >&2
        echo "bin/test: install Debian's chromium package, then run again" >&2
        exit 2
    fi
fi
