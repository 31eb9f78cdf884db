getent group miroir >/dev/null || groupadd --system miroir
getent passwd miroir >/dev/null || useradd --system --gid miroir --home-dir /var/lib/miroir \
    --no-create-home --shell /sbin/nologin --comment "Miroir gateway" miroir
exit 0
