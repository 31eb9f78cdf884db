mkdir -p /var/lib/miroir
chown miroir:miroir /var/lib/miroir
chmod 0750 /var/lib/miroir
chown root:miroir /etc/sysconfig/miroir
chmod 0640 /etc/sysconfig/miroir
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
