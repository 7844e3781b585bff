"""Local sandbox hosts: podman containers with systemd, reached like real machines."""
