#!/bin/sh
# What the image prints when it runs: one line from each of its own layers.
cat /etc/motd
cat /srv/layered/greeting.txt
