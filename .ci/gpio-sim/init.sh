#!/bin/busybox sh
# PID 1 of the gpio-sim guest: mount, create the simulated chip, run the gated tests, report.
/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /sys /dev
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t configfs configfs /sys/kernel/config
mkdir -p /dev/pts
mount -t devpts devpts /dev/pts
# loopback TCP for rig serve in the guest (gpio_sim::uart_pair)
ip link set lo up
cfg=/sys/kernel/config/gpio-sim/rig
mkdir -p "$cfg/bank0"
echo 8 > "$cfg/bank0/num_lines"
echo 1 > "$cfg/live"
echo "guest: kernel $(uname -r), gpio-sim $(cat $cfg/dev_name)/$(cat $cfg/bank0/chip_name), $(ls /dev/gpiochip*), clocksource $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)"
# ttyS1 <-> ttyS2: the UART pair run.sh joins on the host
echo "guest: UART pair $(ls /dev/ttyS1 /dev/ttyS2 | tr '\n' ' ')lo $(cat /sys/class/net/lo/operstate 2>/dev/null || echo missing)"
export METER_RIG_GPIO_SIM=1 METER_RIG_GPIO_SIM_CONFIG=$cfg RUST_BACKTRACE=1
# guest_filter= on the kernel command line (run.sh's GUEST_FILTER) reaches init as a variable
/tests "${guest_filter:-gpio_sim::}" --test-threads=1 --nocapture > /test.log 2>&1
rc=$?
cat /test.log
if grep -q '^SKIPPED' /test.log; then
    echo "guest: a gated test skipped itself inside the guest"
    rc=3
fi
if ! grep -q '^test result: ok\. [1-9]' /test.log; then
    echo "guest: no test ran (filter matched nothing?)"
    [ "$rc" = 0 ] && rc=4
fi
echo "METER-RIG-GUEST-RESULT rc=$rc"
# no ACPI in the tiny kernel: reboot (qemu -no-reboot then exits)
reboot -f
