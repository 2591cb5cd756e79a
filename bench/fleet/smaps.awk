# smaps.awk: bench/fleet/run's breakdown of a process's resident memory (awk -f smaps.awk
# /proc/PID/smaps): private dirty KiB (the memory it wrote itself; private clean pages
# depend on which libraries other processes happen to map), and the six largest resident
# mappings grouped by file.
# per-mapping Rss from /proc/PID/smaps, grouped: heap/anon, the executable, each library
/^[0-9a-f]+-[0-9a-f]+ / { name = (NF >= 6) ? $6 : "[anon]"; sub(".*/", "", name); next }
/^Rss:/ { rss[name] += $2 }
/^Private_Dirty:/ { priv += $2 }
END {
	n = 0
	for (k in rss) { keys[++n] = k }
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (rss[keys[j]] > rss[keys[i]]) { t = keys[i]; keys[i] = keys[j]; keys[j] = t }
	out = ""
	for (i = 1; i <= n && i <= 6; i++) out = out sprintf("%s%s %d", (i > 1 ? ", " : ""), keys[i], rss[keys[i]])
	printf "private dirty %d KiB; largest: %s KiB\n", priv, out
}
