"""Reference RDP values of the Poisson-subsampled Gaussian mechanism by numerical integration
(mpmath, 30 digits), independent of flglm's series: A_a = E_{z~N(0,s^2)}[((1-q) + q e^((2z-1)/(2s^2)))^a],
RDP(a) = log(A_a) / (a - 1). test/privacy/accountant.test.ts holds the printed values.

    /work/torchenv/bin/python scripts/reference/rdp_mpmath.py
"""
import mpmath

mpmath.mp.dps = 30
CASES = [(0.01, 2.5, 1.5), (0.01, 2.5, 2.5), (0.01, 2.5, 5), (1e-3, 1.0, 2), (1e-4, 1.0, 1.5),
         (0.01, 10, 20), (0.1, 100, 20.5), (0.05, 0.8, 3.7), (0.2, 1.5, 7.3), (0.004267, 1.1, 12)]

def rdp(q, sigma, alpha):
    f = lambda z: mpmath.npdf(z, mu=0, sigma=sigma) * ((1 - q) + q * mpmath.exp((2 * z - 1) / (2 * sigma**2))) ** alpha
    return mpmath.log(mpmath.quad(f, [-mpmath.inf, 0, 0.5, mpmath.inf])) / (alpha - 1)

for q, s, a in CASES:
    print(f"  [{q}, {s}, {a}, {mpmath.nstr(rdp(q, s, a), 12)}],")
