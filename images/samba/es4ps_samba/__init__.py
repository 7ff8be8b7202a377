"""The ES4PS directory side: the Samba AD DC entrypoint (`dc`) and the provisioning worker (`worker`)."""
