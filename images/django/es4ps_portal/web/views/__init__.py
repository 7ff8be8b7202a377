"""The portal's pages, one module per job: `registration`, `passwords` (sign-in included), `pages`; `answers`
holds what they share."""
