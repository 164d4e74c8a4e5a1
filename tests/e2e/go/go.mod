module mirrord.test/probe

go 1.26
