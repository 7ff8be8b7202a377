"""The portal's ground layer for people: the user model, the tokens mailed to them and the mails themselves.

    models           User (AUTH_USER_MODEL) and EmailToken
    tokens           single-use link tokens and codes
    mail             every mail the portal sends (templates under accounts/mail/)
    email_domains    which e-mail domains may register, compared as DNS names
    directory        the password check: an LDAP bind to the DC
    backends         the authentication backends (staff locally, people against the directory)
    password_expiry  the reminders before a password expires

It imports nothing from es4ps_portal.provisioning or es4ps_portal.web, which
stand on it (images/django/layout.toml, checked by `make lint`).
"""
