"""Channel adapters: the associations' real channels (WhatsApp, letters, branch-office
batches, other systems' JSON) turned into intake's submissions.

Each adapter is a module of `services.channels.adapters`: it submits as its
channel's machine client (`IntakeGateway`), uses the channel's own message id as
the `channel_ref` (a redelivered webhook or e-mail is one request), answers the
applicant on the same channel through the outbound port, and works for an
association only where its pack enables the channel.
"""
