# On erase (not upgrade), stop the service.
if [ "$1" -eq 0 ] && [ -d /run/systemd/system ]; then
    systemctl --no-reload disable --now miroir.service >/dev/null 2>&1 || true
fi
exit 0
