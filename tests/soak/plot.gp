# The soak's plot (tests/soak/soak): four stacked panels against elapsed minutes, from the CSV.
#   gnuplot -e "csv='docs/soak/soak.csv'; png='docs/soak/soak.png'" tests/soak/plot.gp
# Shaded: the webhook receiver down (from the CSV rows noting "receiver down" / "receiver up").
# Vertical lines: junctiond stopped and started again (SIGTERM, SIGKILL), the end of the load.
# Empty cells (junctiond restarting) are gaps in the lines.
if (!exists("csv")) csv = 'docs/soak/soak.csv'
if (!exists("png")) png = 'docs/soak/soak.png'
if (!exists("title")) title = 'junctiond soak'

set datafile separator ","
# A cell's value divided by k; an empty cell is undefined, which breaks the line there.
v(c, k) = strcol(c) eq "" ? NaN : column(c) / k

# Marker times (minutes), from the note column (26): each fault is noted with the elapsed second
# it happened at ("receiver down @300"), on the next row.
downs = ""; ups = ""; marks = ""; kinds = ""
add(list, t) = list . sprintf(" %.4f", t / 60.0)
at(n, key) = (at_s = n[strstrt(n, key) + strlen(key):], at_e = strstrt(at_s, ";"), (at_e ? at_s[1:at_e - 1] : at_s) + 0)
has(n, key) = strstrt(n, key) > 0
mark(n, key, kind) = has(n, key) ? (marks = add(marks, at(n, key)), kinds = kinds . " " . kind, 1) : 0
stats csv skip 1 using ( \
  n = strcol(26), \
  downs = has(n, "receiver down @") ? add(downs, at(n, "receiver down @")) : downs, \
  ups = has(n, "receiver up @") ? add(ups, at(n, "receiver up @")) : ups, \
  mark(n, "SIGTERM junctiond @", "SIGTERM"), mark(n, "SIGKILL junctiond @", "SIGKILL"), \
  mark(n, "load stopped @", "load-off"), \
  $2) nooutput
end_min = STATS_max / 60.0

do for [i = 1:words(downs)] {
  x0 = word(downs, i) + 0
  x1 = (i <= words(ups)) ? word(ups, i) + 0 : end_min
  set object i rectangle from first x0, graph 0 to first x1, graph 1 \
    behind fillcolor rgb "#f5c26b" fillstyle solid 0.35 noborder
}
do for [i = 1:words(marks)] {
  x0 = word(marks, i) + 0
  colour = word(kinds, i) eq "load-off" ? "#555555" : "#cc0000"
  dash = word(kinds, i) eq "SIGKILL" ? 1 : 2
  set arrow i from first x0, graph 0 to first x0, graph 1 nohead lc rgb colour lw 1.5 dt dash
}

set terminal pngcairo size 1400,1700 font "DejaVu Sans,11"
set output png
set multiplot layout 4,1 title title . "\n(shaded: webhook receiver down; red dashed: SIGTERM restart; red solid: SIGKILL restart; grey: load stopped)" font ",12"
set xrange [0:end_min]
set grid xtics ytics lc rgb "#dddddd"
set key top left opaque box
set lmargin 12
set rmargin 12
set style data lines

# 1. RSS, with the restart labels on top.
do for [i = 1:words(marks)] {
  x0 = word(marks, i) + 0
  set label 100 + i word(kinds, i) at first x0, graph 0.98 right rotate by 90 offset char -0.4, 0 \
    font ",9" tc rgb (word(kinds, i) eq "load-off" ? "#555555" : "#cc0000")
}
set ylabel "RSS (MiB)"
set yrange [0:*]
set format x ""
plot csv skip 1 using ($2 / 60):(v(5, 1024)) lw 2 lc rgb "#1f77b4" title "junctiond VmRSS"
unset label

# 2. Open files and threads.
set ylabel "count"
plot csv skip 1 using ($2 / 60):(v(6, 1)) lw 2 lc rgb "#2ca02c" title "open fds", \
     '' skip 1 using ($2 / 60):(v(7, 1)) lw 2 lc rgb "#9467bd" title "threads"

# 3. Backlog (queue bytes not yet finished, per destination) and events in the delivery windows.
set ylabel "backlog (MiB)"
set y2label "pending events"
set y2tics
set y2range [0:*]
plot csv skip 1 using ($2 / 60):(v(10, 1048576)) lw 2 lc rgb "#ff7f0e" title "backlog file", \
     '' skip 1 using ($2 / 60):(v(11, 1048576)) lw 2 lc rgb "#d62728" title "backlog hook", \
     '' skip 1 using ($2 / 60):(v(12, 1)) axes x1y2 lw 1 lc rgb "#7f7f7f" dt 3 title "pending events, both (right)"
unset y2tics
unset y2label

# 4. Freshness: age of the oldest event each destination has not finished.
set ylabel "oldest undelivered (s)"
set xlabel "elapsed (minutes)"
set format x "%g"
plot csv skip 1 using ($2 / 60):(v(15, 1)) lw 2 lc rgb "#ff7f0e" title "file", \
     '' skip 1 using ($2 / 60):(v(16, 1)) lw 2 lc rgb "#d62728" title "hook (webhook)"

unset multiplot
