"""Work orders (工单) of the 95598 center: the pure lifecycle core and its database service."""
