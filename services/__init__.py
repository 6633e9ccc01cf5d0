"""The four Khidma services. A service never imports another one."""
