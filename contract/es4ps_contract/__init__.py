"""The ES4PS task contract, shared by the portal and the directory workers.

- `tasks`: operations, task names, queues, argument schemas and their validation
- `validation`: field rules (usernames, names, e-mail addresses)
- `policies`: what a policy may give an account (OU, groups, Unix attributes) and the privileged groups it may not
- `directory`: where the product's accounts live (the managed OU) and the worker's account
- `passwords`: the domain's password complexity rules
- `keys`, `sealing`, `signing`: key material, sealed passwords, signed envelopes
- `events`: the result events workers send back
- `transport`: the broker connection both sides share (AMQPS, mutual TLS)
"""
