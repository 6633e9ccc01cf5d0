"""The web application: the staff's screens and the applicant's public pages.

It holds no business rule and no store beyond its sessions (a sealed cookie):
every page calls the other services' APIs with the signed-in person's token,
or, on the public pages, with the website channel's own client token.
"""
