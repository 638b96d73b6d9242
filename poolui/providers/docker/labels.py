"""What makes a container ours: the labels every container of a pool carries (read back on adoption)."""

L_NS, L_POOL, L_MEMBER = "poolui.namespace", "poolui.pool", "poolui.member"
L_EXPIRES, L_REVISION, L_HOST_PORT = "poolui.expires_at", "poolui.revision", "poolui.host_port"
